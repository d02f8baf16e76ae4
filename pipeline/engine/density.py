"""The trained NeRF's density on a grid over the product's box, and what it says.

Sampled once after loading a model, it tells the render stage where the product is (for
framing, framing.py) and which specks of density are not the product at all: clusters
detached from the product's body that a short training leaves in the hull (floaters). The
hull the field is carved to is cleared of them, so no frame shows them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .product import ProductBox

GRID_CELLS = 128
"""Density samples along the crop box's longest side (about a hull voxel each)."""
DENSITY_CHUNK = 1 << 16
FAINT_OPACITY = 0.002
"""Cells that stop less light than this cannot add up to anything a frame shows."""
LINKED_OPACITY = 0.02
"""Cells stopping at least this much light link into clusters..."""
SOLID_OPACITY = 0.3
"""...and a cluster is the product's only when it holds a cell that stops this much..."""
MIN_CLUSTER_SHARE = 0.01
"""...and is at least this share of the largest such cluster (a thin part may be apart
from the body in the grid, a speck of haze is not this big)."""
BODY_MARGIN_CELLS = 2
"""The product's clusters keep this many cells around them: a soft edge stays soft."""


@dataclass(frozen=True)
class DensityGrid:
    """A density field sampled at the centres of a regular grid of cubic cells."""

    lo: np.ndarray
    """Corner of the first cell."""
    step: float
    """Edge of a cell."""
    depth: np.ndarray
    """(X,Y,Z) optical depth across one cell (density × edge)."""

    @property
    def opacity(self) -> np.ndarray:
        return 1 - np.exp(-self.depth)

    def cells(self, at_least: float = FAINT_OPACITY) -> tuple[np.ndarray, np.ndarray]:
        """(centres (M,3), optical depths (M,)) of the cells stopping at least `at_least`."""
        index = np.argwhere(self.opacity >= at_least)
        return self.lo + (index + 0.5) * self.step, self.depth[tuple(index.T)]

    def only(self, keep: np.ndarray) -> DensityGrid:
        """The grid with the cells outside `keep` (X,Y,Z bool) empty."""
        return DensityGrid(self.lo, self.step, np.where(keep, self.depth, 0.0))

    def lookup(self, values: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values of the cells holding `points`, whether each point lies in the grid)."""
        index = np.floor((points - self.lo) / self.step).astype(np.int64)
        inside = ((index >= 0) & (index < np.array(self.depth.shape))).all(axis=1)
        index = np.clip(index, 0, np.array(self.depth.shape) - 1)
        return values[tuple(index.T)], inside


def density_grid(density_at: Callable[[np.ndarray], np.ndarray], box: ProductBox,
                 cells: int = GRID_CELLS) -> DensityGrid:
    """`density_at` (positions (N,3) to densities (N,)) sampled on a grid over `box`."""
    extent = box.hi - box.lo
    step = float(extent.max() / cells)
    shape = tuple(max(1, math.ceil(extent[i] / step)) for i in range(3))
    axes = [box.lo[i] + (np.arange(shape[i]) + 0.5) * step for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    depth = np.concatenate([np.maximum(density_at(grid[i:i + DENSITY_CHUNK]), 0) * step
                            for i in range(0, len(grid), DENSITY_CHUNK)])
    return DensityGrid(np.asarray(box.lo, float), step, depth.reshape(shape))


def model_density(model: Any, device: str) -> Callable[[np.ndarray], np.ndarray]:
    """The trained nerfstudio model's density (the hull carving included) at positions."""
    import torch

    def density_at(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            positions = torch.as_tensor(points, dtype=torch.float32, device=device)
            return model.field.density_fn(positions).float().reshape(-1).cpu().numpy()
    return density_at


def product_cells(grid: DensityGrid) -> np.ndarray:
    """(X,Y,Z) bool: the product's body and a margin around it; what lies beyond is a
    floater. All cells when nothing in the grid is solid (nothing to tell apart)."""
    from scipy.ndimage import binary_dilation, label

    opacity = grid.opacity
    labels, count = label(opacity >= LINKED_OPACITY, np.ones((3, 3, 3), bool))
    solid = np.unique(labels[(opacity >= SOLID_OPACITY) & (labels > 0)])
    if count == 0 or len(solid) == 0:
        return np.ones(grid.depth.shape, bool)
    sizes = np.bincount(labels.ravel())[solid]
    kept = solid[sizes >= MIN_CLUSTER_SHARE * sizes.max()]
    return binary_dilation(np.isin(labels, kept), np.ones((3, 3, 3), bool),
                           iterations=BODY_MARGIN_CELLS)


def clear_floaters(field: Any, grid: DensityGrid) -> tuple[DensityGrid, int]:
    """Carves the floaters out of `field`'s hull (a HullCarvedField; others are left as
    they are) and returns the grid without them, with the hull voxels cleared."""
    import torch

    body = product_cells(grid)
    cleared = 0
    hull = getattr(field, "hull", None)
    if hull is not None:
        occupied = hull.cpu().numpy()
        index = np.argwhere(occupied)
        centres = field.hull_corner.cpu().numpy() + (index + 0.5) * field.hull_step
        keep, inside = grid.lookup(body, centres)
        # Voxels beyond the grid lie outside the crop box: no ray samples them.
        drop = index[inside & ~keep]
        cleared = len(drop)
        if cleared:
            occupied[tuple(drop.T)] = False
            hull.copy_(torch.from_numpy(occupied))
    return grid.only(body), cleared
