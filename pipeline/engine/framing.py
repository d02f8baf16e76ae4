"""How the frames frame the product: its silhouette fills the frame, not its box.

The crop box is loose on purpose (margins, headroom for a top with no sparse points, the
hull's slack), so a frame sized to the box showed the product at a third of its width. The
trained NeRF knows where the product is: its density, sampled on a grid over the crop box,
gives the product's occupied cells; projected through every camera of the orbit they give
each frame's silhouette. One focal length and one principal point for the whole orbit (a
spin must not pump from frame to frame) make the widest silhouette span `fill` of the
frame, and put the silhouettes' mean centre at the frame's centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .density import LINKED_OPACITY, DensityGrid
from .errors import InputError
from .orbit import OrbitFrame, framing, orbit
from .presets import DEFAULT_FILL_PERCENT, MAX_FILL_PERCENT, MIN_FILL_PERCENT
from .product import ProductBox

SILHOUETTE_ALPHA = 0.5
"""A frame's pixel is product where its alpha reaches this (as the quality bench counts)."""
MIN_BLOB_SHARE = 0.02
"""Patches of a silhouette smaller than this share of it are floaters: they do not steer
the framing."""
WIDEST_FRAMES = 3
MAX_AZIMUTHS = 120
"""Silhouettes measured per row at most (every 3°): they change smoothly with azimuth."""


@dataclass(frozen=True)
class Framing:
    """One camera setup for every frame of the orbit."""

    focal: float
    """Focal length in pixels."""
    cx: float
    cy: float
    """Principal point in pixels: where the silhouettes' mean centre lands is the middle."""
    distance: float
    """Camera distance from `center`."""
    center: np.ndarray
    """The point the orbit turns around and looks at."""
    fill: float | None
    """The widest silhouette's share of the frame, or None when the product's cells could
    not be found and the frame holds the crop box instead."""
    offset: tuple[float, float] = (0.0, 0.0)
    """The silhouettes' mean centre at focal length 1 (x right, y up): the frame's middle."""
    widest: tuple[int, ...] = ()
    """The orbit frames whose silhouettes reach farthest from the middle, widest first."""

    def reaching(self, reach: float, size: int) -> Framing:
        """This framing for silhouettes that reach `reach` (at focal length 1) from the
        middle at the farthest: the focal length that makes them span the fill."""
        assert self.fill is not None
        focal = self.fill * size / 2 / max(reach, 1e-9)
        ox, oy = self.offset
        return replace(self, focal=focal, cx=size / 2 - focal * ox, cy=size / 2 + focal * oy)


def check_fill(percent: int) -> None:
    if not MIN_FILL_PERCENT <= percent <= MAX_FILL_PERCENT:
        raise InputError(f"--fill must be between {MIN_FILL_PERCENT} and {MAX_FILL_PERCENT} "
                         f"(percent of the frame the product spans); got {percent}.")


def silhouette_bounds(grid: DensityGrid, frame: OrbitFrame, distance: float
                      ) -> tuple[float, float, float, float] | None:
    """x0, x1, y0, y1 of the product's silhouette seen from `frame`, at focal length 1 (x
    right, y up), or None when nothing reaches the silhouette's alpha.

    The cells' optical depths are summed into bins a cell wide at the orbit's distance, so a
    bin's alpha is what a ray through it would accumulate; a bin that no cell centre fell in
    (cells near the camera look bigger than a bin) is closed over by its neighbours."""
    import cv2

    centres, optical = grid.cells()
    cam = (centres - frame.c2w[:3, 3]) @ frame.c2w[:3, :3]  # OpenGL: looking down -z
    depth = np.maximum(-cam[:, 2], 1e-6)
    x, y = cam[:, 0] / depth, cam[:, 1] / depth
    size = grid.step / distance
    ix = np.floor((x - x.min()) / size).astype(np.int64)
    iy = np.floor((y - y.min()) / size).astype(np.int64)
    bins = np.zeros((iy.max() + 1, ix.max() + 1))
    np.add.at(bins, (iy, ix), optical)
    inside = (1 - np.exp(-np.pad(bins, 1)) >= SILHOUETTE_ALPHA).astype(np.uint8)
    inside = cv2.morphologyEx(inside, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    if count < 2:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= MIN_BLOB_SHARE * areas.sum()) + 1
    rows, cols = np.nonzero(np.isin(labels, keep))
    # Bin centres (the padding shifted them by one): an edge lies inside its bin.
    return (x.min() + (cols.min() - 0.5) * size, x.min() + (cols.max() - 0.5) * size,
            y.min() + (rows.min() - 0.5) * size, y.min() + (rows.max() - 0.5) * size)


def frame_product(grid: DensityGrid, box: ProductBox,
                  elevation_deg: tuple[float, float, float], camera_distance: float,
                  frames: int, rows: int, size: int, fill_percent: int = DEFAULT_FILL_PERCENT
                  ) -> tuple[Framing, list[OrbitFrame]]:
    """The framing and the orbit for a square `size` frame in which the product's widest
    silhouette over the orbit spans `fill_percent` of the frame.

    The orbit turns around the middle of the product's cells (not the box's, which leans
    toward its margins), at the capture's distance: the photos' perspective. Where no
    silhouette can be found (an empty model) the frame holds the crop box as before."""
    check_fill(fill_percent)
    centres, _ = grid.cells(LINKED_OPACITY)
    if len(centres):
        lo, hi = centres.min(axis=0), centres.max(axis=0)
        center = (lo + hi) / 2
        distance = max(camera_distance, 1.5 * float(np.linalg.norm(hi - lo)) / 2)
        path = orbit(elevation_deg, distance, frames, rows, center=center)
        every = max(1, math.ceil(frames / MAX_AZIMUTHS))
        measured = {i: b for i, frame in enumerate(path) if (i % frames) % every == 0
                    and (b := silhouette_bounds(grid, frame, distance)) is not None}
        if measured:
            bounds = np.array(list(measured.values()))
            # One offset for the whole orbit: the mean of the silhouettes' centres.
            ox = float(np.mean((bounds[:, 0] + bounds[:, 1]) / 2))
            oy = float(np.mean((bounds[:, 2] + bounds[:, 3]) / 2))
            reach = np.abs(bounds - np.array([ox, ox, oy, oy])).max(axis=1)
            widest = tuple(np.array(list(measured))[np.argsort(-reach)[:WIDEST_FRAMES]])
            shot = Framing(1.0, 0.0, 0.0, distance, center, fill_percent / 100, (ox, oy),
                           tuple(int(i) for i in widest))
            return shot.reaching(float(reach.max()), size), path
    focal, distance = framing(box, camera_distance, size)
    return (Framing(focal, size / 2, size / 2, distance, box.center, None),
            orbit(elevation_deg, distance, frames, rows, center=box.center))
