"""Loading nerfstudio 1.1.5 checkpoints under torch >= 2.6, without patching either.

torch 2.6 made `torch.load(weights_only=True)` the default; nerfstudio 1.1.5 calls
`torch.load` without the argument, and its checkpoints hold a few objects beyond plain
tensors. Allow-listing exactly those keeps the safe loader (no arbitrary unpickling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def allow_checkpoint_loading() -> None:
    """Lets torch's weights-only loader read nerfstudio checkpoints, in this process."""
    import torch

    torch.serialization.add_safe_globals(_checkpoint_globals())


def _checkpoint_globals() -> list[Any]:
    # The learning-rate schedulers' state holds numpy scalars (and so their dtypes).
    import numpy as np

    try:
        from numpy.core.multiarray import scalar
    except ImportError:  # numpy >= 2 moved it
        from numpy._core.multiarray import scalar  # type: ignore[no-redef]
    return [scalar, np.dtype, *{type(np.dtype(t)) for t in ("float64", "float32", "int64")}]


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    allow_checkpoint_loading()
    return torch.load(path, map_location="cpu", weights_only=True)
