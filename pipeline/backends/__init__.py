"""Where engine stages run: on this machine (local) or on Modal's GPUs (modal)."""

from .base import (
    Backend,
    BackendError,
    StageResult,
    StageStatus,
    get_backend,
)

__all__ = [
    "Backend", "BackendError", "StageResult", "StageStatus", "get_backend",
]
