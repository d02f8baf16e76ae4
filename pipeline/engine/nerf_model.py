"""Nerfacto, fitted to one product: samples only inside its box, and runs offline.

Three changes to nerfstudio's nerfacto, by configuration or subclassing:
- The rays are clipped to the product's box (an AABB collider) and the hash grids span
  that box alone, without scene contraction. Photos are trained as RGBA with the
  background masked out, so everything outside the box is empty by construction: all
  samples and all grid resolution go to the product, and nothing outside it can appear.
- Inside the box, density is allowed only in the visual hull of the photos' masks
  (when the train stage made one): a space no silhouette calls product is empty, so
  the haze and floaters a short training leaves around the product cannot show. The
  hull's voxels live in the checkpoint, so frames render with the same carving.
- Nerfacto builds torchmetrics' LPIPS metric at start, which downloads AlexNet weights
  from the internet. It is only an evaluation metric, so it is replaced by one that
  reports "not computed" (NaN) and needs no weights.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import torch
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.callbacks import (
    TrainingCallback,
    TrainingCallbackAttributes,
    TrainingCallbackLocation,
)
from nerfstudio.fields.nerfacto_field import NerfactoField
from nerfstudio.model_components.scene_colliders import AABBBoxCollider
from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

Box = tuple[tuple[float, float, float], tuple[float, float, float]]
DensityFn = Callable[..., torch.Tensor]


@dataclass
class ProductNerfactoModelConfig(NerfactoModelConfig):
    _target: type = field(default_factory=lambda: ProductNerfactoModel)
    product_box: Box = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    """The product's axis-aligned box in the normalized frame: (min xyz, max xyz)."""
    hull_grid: tuple[tuple[float, float, float], float, tuple[int, int, int]] | None = None
    """The visual hull's grid, (first voxel's corner, voxel edge, voxels per axis), or None
    for no carving. The voxels themselves are set by `set_hull` and kept in checkpoints."""
    background_color: str = "random"  # type: ignore[assignment]
    disable_scene_contraction: bool = True
    proposal_initial_sampler: str = "uniform"  # type: ignore[assignment]
    sparsity_loss_mult: float = 0.0
    """Weight of the empty-space prior (ProductNerfactoModel.empty_space_prior): the mean
    opacity of short segments at random points of the box. 0 turns it off."""
    sparsity_points: int = 4096
    """Random points the empty-space prior samples per step."""
    distortion_loss_mult_final: float | None = None
    """Where set, the distortion loss's weight rises linearly from `distortion_loss_mult` to
    this over `distortion_ramp_steps` (ProductNerfactoModel.distortion_weight)."""
    distortion_ramp_steps: tuple[int, int] = (0, 1)
    """The steps the distortion loss's weight starts and ends its rise at."""


class HullCarvedField(NerfactoField):
    """Nerfacto's field with no density outside the product's visual hull."""

    def __init__(self, *args: Any, hull_grid: tuple[Any, float, tuple[int, int, int]],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        corner, self.hull_step, shape = hull_grid
        self.register_buffer("hull_corner", torch.tensor(corner, dtype=torch.float32))
        # All product until set_hull fills it: an unset hull carves nothing.
        self.register_buffer("hull", torch.ones(tuple(shape), dtype=torch.bool))
        # Not saved: derived from the hull's shape, kept to spare a tensor per sample batch.
        self.register_buffer("hull_size", torch.tensor(tuple(shape)), persistent=False)

    def set_hull(self, occupied: np.ndarray) -> None:
        self.hull.copy_(torch.from_numpy(np.ascontiguousarray(occupied, dtype=bool)))

    def inside_hull(self, positions: torch.Tensor) -> torch.Tensor:
        """(…, 1) 1.0 where a position lies in an occupied voxel, else 0.0."""
        index = torch.floor((positions - self.hull_corner) / self.hull_step).long()
        inside = ((index >= 0) & (index < self.hull_size)).all(dim=-1)
        index = torch.minimum(index.clamp(min=0), self.hull_size - 1)
        occupied = self.hull[index[..., 0], index[..., 1], index[..., 2]] & inside
        return occupied[..., None].to(positions.dtype)

    def get_density(self, ray_samples: Any) -> tuple[torch.Tensor, torch.Tensor]:
        density, embedding = super().get_density(ray_samples)
        return density * self.inside_hull(ray_samples.frustums.get_positions()), embedding

    def carve(self, density_fn: DensityFn) -> DensityFn:
        """A proposal network's density function, carved the same way."""
        def carved(positions: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
            return density_fn(positions, times) * self.inside_hull(positions)
        return carved


class ProductNerfactoModel(NerfactoModel):
    config: ProductNerfactoModelConfig

    def populate_modules(self) -> None:
        import nerfstudio.models.nerfacto as nerfacto_module
        import torchmetrics.image.lpip as lpip_module

        # The fields normalize positions by self.scene_box: make it the product's box.
        self.scene_box = SceneBox(aabb=torch.tensor(self.config.product_box, dtype=torch.float32))
        hull = self.config.hull_grid
        # Nerfacto looks both classes up in these modules inside populate_modules, so
        # swapping the module attributes for the duration of that call is enough.
        with contextlib.ExitStack() as swaps:
            swaps.enter_context(_swapped(lpip_module, "LearnedPerceptualImagePatchSimilarity",
                                         OfflineLPIPS))
            if hull is not None:
                swaps.enter_context(_swapped(nerfacto_module, "NerfactoField",
                                             functools.partial(HullCarvedField, hull_grid=hull)))
            super().populate_modules()
        if hull is not None:
            self.density_fns = [self.field.carve(fn) for fn in self.density_fns]
        self.collider = AABBBoxCollider(self.scene_box, near_plane=self.config.near_plane)

    def get_training_callbacks(
            self, training_callback_attributes: TrainingCallbackAttributes
    ) -> list[TrainingCallback]:
        callbacks = super().get_training_callbacks(training_callback_attributes)
        # Nerfacto keeps self.step only while it anneals the proposal weights: keep it always.
        callbacks.append(TrainingCallback(
            where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION],
            update_every_num_iters=1, func=self._set_step))
        return callbacks

    def _set_step(self, step: int) -> None:
        self.step = step

    def distortion_weight(self, step: int) -> float:
        """The distortion loss's weight at STEP. Light while the surface forms, so that the
        loss does not thin it to a sheet the proposal samplers step over (pinholes); heavier
        at the end, when it gathers the faint haze left beside the edges into the surface."""
        start, final = self.config.distortion_loss_mult, self.config.distortion_loss_mult_final
        if final is None:
            return start
        first, last = self.config.distortion_ramp_steps
        share = min(1.0, max(0.0, (step - first) / max(1, last - first)))
        return start + (final - start) * share

    def get_loss_dict(self, outputs: dict, batch: dict,
                      metrics_dict: dict | None = None) -> dict[str, torch.Tensor]:
        losses = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.training:
            assert metrics_dict is not None
            losses["distortion_loss"] = (self.distortion_weight(self.step)
                                         * metrics_dict["distortion"])
        if self.training and self.config.sparsity_loss_mult > 0:
            losses["sparsity_loss"] = self.config.sparsity_loss_mult * self.empty_space_prior()
        return losses

    def empty_space_prior(self) -> torch.Tensor:
        """Mean opacity of segments 1/128 of the box's diagonal long, at random points of the
        box. Space that no photo sees against the backdrop but that lies inside every
        silhouette (the wedges of the visual hull beside a product's edges) gets no
        gradient from the photos' colours once the product behind it shows through: left
        alone it keeps the faint density training started with, which shows as a haze
        along the edges from viewpoints between the photos'. This prior is what clears it;
        the photos' colours keep the surface."""
        lo, hi = self.scene_box.aabb.to(self.device)
        points = lo + (hi - lo) * torch.rand(self.config.sparsity_points, 3, device=self.device)
        density = self.field.density_fn(points)
        segment = torch.linalg.norm(hi - lo) / 128
        return (1 - torch.exp(-density * segment)).mean()


class OfflineLPIPS(torch.nn.Module):
    """Stands in for LPIPS where its network weights cannot be downloaded: NaN, not a score."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return torch.tensor(float("nan"))


@contextlib.contextmanager
def _swapped(module: ModuleType, name: str, value: object) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)
