"""Where the product is, and the normalized frame every later stage works in.

Normalized frame: the product's centre at the origin, up = +Z, unit length = the product's
radius (it fits in the unit sphere), and the first photo's camera on the +X side, so an
orbit that starts at azimuth 0 starts where the shop owner started. WS/model/object.json
records the product in that frame and the similarity from COLMAP's frame into it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .progress import write_json_atomic

log = logging.getLogger(__name__)

# Sparse points farther than this (times the median camera distance) from where the cameras
# look are background, not product.
_NEAR_FRACTION = 0.6
# Tolerance of the ground (table) plane fit, times the median camera distance.
_GROUND_TOLERANCE = 0.01


@dataclass(frozen=True)
class ObjectLocation:
    """The product in the source (e.g. COLMAP) frame."""

    center: np.ndarray  # (3,)
    up: np.ndarray  # (3,) unit
    radius: float
    basis: np.ndarray  # 3×3, rows: the normalized frame's x, y, z axes in the source frame
    bbox_min: np.ndarray  # (3,) in the normalized frame
    bbox_max: np.ndarray
    found_ground: bool
    object_points: int

    def to_normalized(self) -> np.ndarray:
        return similarity(self.center, self.basis, self.radius)


def similarity(center: np.ndarray, basis: np.ndarray, radius: float) -> np.ndarray:
    """4×4 matrix x' = basis · (x − center) / radius."""
    t = np.eye(4)
    t[:3, :3] = basis / radius
    t[:3, 3] = -basis @ center / radius
    return t


def horizontal_basis(up: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Rows x, y, z of a right-handed frame with z = up and x along `towards` made level."""
    z = _unit(up)
    x = towards - np.dot(towards, z) * z
    if np.linalg.norm(x) < 1e-9:  # looking straight down the axis: any level x will do
        x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x = _unit(x)
    return np.stack([x, np.cross(z, x), z])


def transform_points(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ t[:3, :3].T + t[:3, 3]


def transform_poses(t: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world matrices (N,4,4) moved by the similarity `t`; rotations stay unitary."""
    scale = np.cbrt(np.linalg.det(t[:3, :3]))
    out = np.array(c2w, float, copy=True)
    out[:, :3, :3] = (t[:3, :3] / scale) @ out[:, :3, :3]
    out[:, :3, 3] = transform_points(t, out[:, :3, 3])
    return out


def locate_object(c2w: np.ndarray, points: np.ndarray) -> ObjectLocation:
    """Finds the product from the cameras (N,4,4, OpenCV) and the sparse points (M,3).

    The cameras of a capture orbit the product and look at it: their optical axes meet
    near it and their centres lie on rings around its vertical axis. Sparse points near
    that meeting point, above the table plane when there is one, are the product.
    """
    centers = c2w[:, :3, 3]
    forwards = c2w[:, :3, 2]
    focus = _closest_point_to_lines(centers, forwards)
    up = _orbit_axis(centers, -c2w[:, :3, 1])
    distance = float(np.median(np.linalg.norm(centers - focus, axis=1)))
    near = points[np.linalg.norm(points - focus, axis=1) < _NEAR_FRACTION * distance]

    ground = _ground_plane(near, up, focus, distance)
    floor = None
    if ground is not None:
        up, floor = ground
        # Well clear of the table: its far edges, where the plane fits worst, stay out.
        near = near[near @ up > floor + 3 * _GROUND_TOLERANCE * distance]
    near = _without_stray_points(near, up)

    basis = horizontal_basis(up, centers[0] - focus)
    if len(near) >= 10:
        local = near @ basis.T
        q = 1.0 if len(near) >= 50 else 0.0
        lo, hi = np.percentile(local, q, axis=0), np.percentile(local, 100 - q, axis=0)
        if floor is not None:
            lo[2] = floor  # the product stands on the table: its bottom is hidden there
        center = basis.T @ ((lo + hi) / 2)
        # The sphere around the box: the whole product fits in the unit sphere.
        radius = max(float(np.linalg.norm(hi - lo)) / 2, 1e-6 * distance)
        half = (hi - lo) / 2 / radius
    else:
        # Too few points to see its shape: assume it fills about half of the view.
        log.warning("only %d sparse points on the product; guessing its size", len(near))
        center, radius = focus, 0.25 * distance
        half = np.full(3, 1.0)
    return ObjectLocation(center=center, up=up, radius=radius, basis=basis,
                          bbox_min=-half, bbox_max=half, found_ground=floor is not None,
                          object_points=len(near))


def describe_object(location: ObjectLocation, c2w: np.ndarray) -> dict[str, Any]:
    """object.json: the product and the cameras around it, in the normalized frame."""
    t = location.to_normalized()
    return object_document(t, transform_poses(t, c2w), location.bbox_min, location.bbox_max)


def object_document(
    to_normalized: np.ndarray, c2w_normalized: np.ndarray, bbox_min: np.ndarray,
    bbox_max: np.ndarray,
) -> dict[str, Any]:
    centers = c2w_normalized[:, :3, 3]
    distance = np.linalg.norm(centers, axis=1)
    elevation = np.degrees(np.arcsin(np.clip(centers[:, 2] / distance, -1, 1)))
    return {
        "center": [0.0, 0.0, 0.0],
        "radius": 1.0,
        "up": [0.0, 0.0, 1.0],
        "bbox_min": _rounded(bbox_min),
        "bbox_max": _rounded(bbox_max),
        "camera_distance": _stats(distance),
        "elevation_deg": _stats(elevation),
        "colmap_to_world": [_rounded(row, 9) for row in to_normalized],
    }


def write_object_json(path: Path, document: dict[str, Any]) -> None:
    write_json_atomic(Path(path), document)


def _closest_point_to_lines(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
    a, b = proj.sum(axis=0), np.einsum("nij,nj->i", proj, origins)
    if np.linalg.cond(a) > 1e6:  # (nearly) parallel axes meet nowhere: look ahead of them
        return origins.mean(axis=0) + d.mean(axis=0) * np.ptp(origins, axis=0).max()
    return np.linalg.solve(a, b)


def _orbit_axis(centers: np.ndarray, camera_ups: np.ndarray) -> np.ndarray:
    """The normal of the plane the cameras orbit in, on the side the photos' tops point to.

    Falls back on the average "up" of the photos when the cameras do not spread over a
    plane (a straight walk, or too few photos).
    """
    mean_up = _unit(camera_ups.sum(axis=0))
    if len(centers) < 4:
        return mean_up
    _, s, vt = np.linalg.svd(centers - centers.mean(axis=0))
    if s[2] > 0.5 * s[1]:
        return mean_up
    normal = vt[2] if np.dot(vt[2], mean_up) >= 0 else -vt[2]
    return normal if np.dot(normal, mean_up) > np.cos(np.radians(50)) else mean_up


def _without_stray_points(points: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Drops points far out sideways from the bulk of the product (bad matches, bits of
    the background): beyond twice the median distance from its vertical axis."""
    if len(points) < 10:
        return points
    flat = points - np.outer(points @ up, up)
    axis = np.median(flat, axis=0)
    reach = np.linalg.norm(flat - axis, axis=1)
    limit = 2.0 * float(np.median(reach))
    return points[reach <= limit] if limit > 0 else points


def _ground_plane(
    points: np.ndarray, up: np.ndarray, focus: np.ndarray, distance: float,
) -> tuple[np.ndarray, float] | None:
    """The table the product stands on: a level plane below it, seen all around it.

    Returns (normal, height along the normal) or None when there is no such plane.
    """
    if len(points) < 30:
        return None
    rng = np.random.default_rng(0)
    tol = _GROUND_TOLERANCE * distance
    best: tuple[int, np.ndarray, float] | None = None
    for _ in range(300):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n = _unit(n)
        if np.dot(n, up) < 0:
            n = -n
        if np.dot(n, up) < np.cos(np.radians(25)):
            continue
        h = float(np.dot(n, a))
        if h >= float(np.dot(n, focus)):
            continue  # above where the cameras look: the top of the product, not a table
        heights = points @ n - h
        # A table hides what is under it: points below the plane count against it.
        score = int(np.sum(np.abs(heights) < tol)) - int(np.sum(heights < -2 * tol))
        if best is None or score > best[0]:
            best = (score, n, h)
    if best is None or best[0] < max(20, 0.15 * len(points)):
        return None
    _, n, h = best
    if np.sum(points @ n - h < -2 * tol) > 0.05 * len(points):
        return None
    inliers = points[np.abs(points @ n - h) < tol]
    # Refit on the inliers, then check they surround the product rather than lie on one side.
    centroid = inliers.mean(axis=0)
    n = _unit(np.linalg.svd(inliers - centroid)[2][2])
    n = n if np.dot(n, up) >= 0 else -n
    h = float(np.dot(n, centroid))
    basis = horizontal_basis(n, np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array(
        [0.0, 1.0, 0.0]))
    offset = (inliers - focus) @ basis[:2].T
    sectors = np.unique((np.degrees(np.arctan2(offset[:, 1], offset[:, 0])) // 45).astype(int))
    if len(sectors) < 6:
        return None
    return n, h


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"min": round(float(values.min()), 4), "mean": round(float(values.mean()), 4),
            "max": round(float(values.max()), 4)}


def _rounded(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, float) / np.linalg.norm(v)
