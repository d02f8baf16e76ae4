"""The orbit the frames are rendered from: rows of cameras circling the product's centre.

Cameras use nerfstudio's (OpenGL) convention, camera-to-world, in the normalized frame of
object.json: product centre at the origin, up = +Z. Azimuth 0 points from the centre to
the first photo (that is how the colmap stage lays out the frame), so frame 0 shows the
side the shop owner photographed first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .product import ProductBox

MAX_ABS_ELEVATION = 80.0
"""Rows stay this far from straight above or below, where "up" in the frame is undefined."""
FRAME_MARGIN = 1.06
"""The product's bounding sphere fills the frame, plus this margin."""


@dataclass(frozen=True)
class OrbitFrame:
    index: int
    row: int
    azimuth_deg: float
    elevation_deg: float
    c2w: np.ndarray
    """4×4 camera-to-world, OpenGL convention (x right, y up, looking down −z)."""


def row_elevations(elevation_deg: tuple[float, float, float], rows: int) -> list[float]:
    """One row at the capture's mean elevation, or `rows` rows spread over its range."""
    lo, mean, hi = (max(-MAX_ABS_ELEVATION, min(MAX_ABS_ELEVATION, e)) for e in elevation_deg)
    if rows == 1:
        return [mean]
    return [float(e) for e in np.linspace(lo, hi, rows)]


def look_at_gl(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, cam_up, -forward, eye
    return c2w


def orbit(elevation_deg: tuple[float, float, float], distance: float, frames_per_row: int,
          rows: int = 1, center: np.ndarray | None = None) -> list[OrbitFrame]:
    """`rows` full turns of `frames_per_row` cameras each, at `distance` from `center` (the
    product box's centre; the origin by default)."""
    up = np.array([0.0, 0.0, 1.0])
    target = np.zeros(3) if center is None else np.asarray(center, float)
    out = []
    for row, elevation in enumerate(row_elevations(elevation_deg, rows)):
        el = math.radians(elevation)
        for i in range(frames_per_row):
            azimuth = 360.0 * i / frames_per_row
            az = math.radians(azimuth)
            eye = target + distance * np.array([math.cos(el) * math.cos(az),
                                                math.cos(el) * math.sin(az), math.sin(el)])
            out.append(OrbitFrame(len(out), row, round(azimuth, 6), round(elevation, 4),
                                  look_at_gl(eye, target, up)))
    return out


def framing(box: ProductBox, distance: float, size: int) -> tuple[float, float]:
    """(focal length in pixels, camera distance from the box's centre) that keep the whole
    box in a square frame.

    The distance is the capture's; it only grows when that would put the camera inside
    the product's bounding sphere.
    """
    corners = np.array([[x, y, z] for x in (box.lo[0], box.hi[0]) for y in (box.lo[1], box.hi[1])
                        for z in (box.lo[2], box.hi[2])])
    radius = float(np.linalg.norm(corners - box.center, axis=1).max())
    distance = max(distance, 1.5 * radius)
    tan_half = FRAME_MARGIN * radius / math.sqrt(distance**2 - radius**2)
    return (size / 2) / tan_half, distance
