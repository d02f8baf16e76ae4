"""Nerfacto, fitted to one product: samples only inside its box, and runs offline.

Two changes to nerfstudio's nerfacto, both by configuration or subclassing:
- The rays are clipped to the product's box (an AABB collider) and the hash grids span
  that box alone, without scene contraction. Photos are trained as RGBA with the
  background masked out, so everything outside the box is empty by construction: all
  samples and all grid resolution go to the product, and nothing outside it can appear.
- Nerfacto builds torchmetrics' LPIPS metric at start, which downloads AlexNet weights
  from the internet. It is only an evaluation metric, so it is replaced by one that
  reports "not computed" (NaN) and needs no weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.model_components.scene_colliders import AABBBoxCollider
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

Box = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass
class ProductNerfactoModelConfig(NerfactoModelConfig):
    _target: type = field(default_factory=lambda: ProductNerfactoModel)
    product_box: Box = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    """The product's axis-aligned box in the normalized frame: (min xyz, max xyz)."""
    background_color: str = "random"  # type: ignore[assignment]
    disable_scene_contraction: bool = True
    proposal_initial_sampler: str = "uniform"  # type: ignore[assignment]


class ProductNerfactoModel(NerfactoModel):
    config: ProductNerfactoModelConfig

    def populate_modules(self) -> None:
        # The fields normalize positions by self.scene_box: make it the product's box.
        self.scene_box = SceneBox(aabb=torch.tensor(self.config.product_box, dtype=torch.float32))
        with _offline_lpips():
            super().populate_modules()
        self.collider = AABBBoxCollider(self.scene_box, near_plane=self.config.near_plane)


class OfflineLPIPS(torch.nn.Module):
    """Stands in for LPIPS where its network weights cannot be downloaded: NaN, not a score."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return torch.tensor(float("nan"))


@contextlib.contextmanager
def _offline_lpips() -> Iterator[None]:
    # Nerfacto imports the class from this module inside populate_modules, so swapping the
    # module attribute for the duration of that call is enough; it is restored after.
    import torchmetrics.image.lpip as lpip_module

    original = lpip_module.LearnedPerceptualImagePatchSimilarity
    lpip_module.LearnedPerceptualImagePatchSimilarity = OfflineLPIPS  # type: ignore[misc]
    try:
        yield
    finally:
        lpip_module.LearnedPerceptualImagePatchSimilarity = original  # type: ignore[misc]
