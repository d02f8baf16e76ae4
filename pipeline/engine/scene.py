"""Where the product is, and the normalized frame every later stage works in.

Normalized frame: the product's centre at the origin, up = +Z, unit length = the product's
radius (it fits in the unit sphere), and the first photo's camera on the +X side, so an
orbit that starts at azimuth 0 starts where the shop owner started. WS/model/object.json
records the product in that frame and the similarity from COLMAP's frame into it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import Intrinsics
from .workspace import write_json_atomic

log = logging.getLogger(__name__)

# Sparse points farther than this (times the median camera distance) from where the cameras
# look are background, not product.
_NEAR_FRACTION = 0.6
# Tolerance of the ground (table) plane fit, times the median camera distance.
_GROUND_TOLERANCE = 0.01
# A plane whose points come this close to a photo's edge (share of its width or height),
# or run past it, reaches that photo's edge.
_EDGE_MARGIN = 0.04
# Plane points farther than this (times the camera distance) from the product's axis are
# not looked at for the edge test.
_EDGE_SEARCH = 0.9
# Sparse points closer than this (times the camera distance) always link into one body.
_LINK_MIN = 0.05
# A group of linked points smaller than this (in points, and as a share of all of them)
# is an island of bad matches or background, never a part of the product.
_MIN_GROUP = 5
_MIN_GROUP_SHARE = 0.02
# A thin base on a table shows at least this many points on its top, and under its
# outline no more points of the table than this share of its own.
_MIN_BASE_POINTS = 20
_BASE_OVER_TABLE = 0.5
# Refits of the support plane on its outer points (see _support_plane).
_SUPPORT_REFITS = 4


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
    points: np.ndarray
    """(M,3) the sparse points that make up the product, a base on a table included."""

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


def locate_object(c2w: np.ndarray, points: np.ndarray,
                  cameras: Sequence[Intrinsics]) -> ObjectLocation:
    """Finds the product from the cameras (N,4,4, OpenCV, with their intrinsics) and the
    sparse points (M,3).

    The cameras of a capture orbit the product and look at it: their optical axes meet
    near it and their centres lie on rings around its vertical axis. The product is the
    one connected body of sparse points near that meeting point, above the backdrop.

    What the product stands on decides where its box ends below. The lowest level plane
    under it is the backdrop (a table, a floor) when it runs out to the edges of the
    photos; a level plane that stays inside every photo, with nothing but plain backdrop
    around it, is the product's own base (a baseplate, a tray, a book lying flat) and is
    kept. A base on a textured table is kept too: the table is cut just above its own
    surface, as measured by its points' spread, not at a fixed height.
    """
    centers = c2w[:, :3, 3]
    forwards = c2w[:, :3, 2]
    focus = _closest_point_to_lines(centers, forwards)
    up = _orbit_axis(centers, -c2w[:, :3, 1])
    distance = float(np.median(np.linalg.norm(centers - focus, axis=1)))
    near = points[np.linalg.norm(points - focus, axis=1) < _NEAR_FRACTION * distance]

    support = _support_plane(near, up, focus, distance)
    floor = None
    if support is not None:
        up, height, spread = support
        if _reaches_photo_edges(points, up, height, focus, distance, c2w, cameras):
            floor = height
            near = _above_table(near, up, floor, spread, focus, distance, c2w, cameras)
        else:
            log.info("the lowest level plane stays inside the photos: it is the product's "
                     "own base, not the table")
    near = _connected_body(near, distance)

    basis = horizontal_basis(up, centers[0] - focus)
    if len(near) >= 10:
        # The whole body, to its last point: islands of stray points are already gone, and
        # a part with few points (a ball on top of a wide base) must not be trimmed away.
        local = near @ basis.T
        lo, hi = local.min(axis=0), local.max(axis=0)
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
                          points=near)


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


def _connected_body(points: np.ndarray, distance: float) -> np.ndarray:
    """The product's points: the large connected groups among them, without the small
    islands that bad matches and bits of the background leave around it.

    Points link when closer than a few times their typical spacing (and always within
    5 % of the camera distance), so a product whose parts are parted by a plain band keeps
    both and a wide base stays joined to what stands on it; stray matches are islands of a
    few points.
    """
    if len(points) < 10:
        return points
    labels = _linked_groups(points, _LINK_MIN * distance)
    sizes = np.bincount(labels)
    keep = sizes >= max(_MIN_GROUP, _MIN_GROUP_SHARE * len(points))
    return points[keep[labels]]


def _linked_groups(points: np.ndarray, at_least: float = 0.0) -> np.ndarray:
    """A group label for each point: points closer than three times their typical
    spacing (or `at_least`) are in the same group."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    spacing, _ = tree.query(points, k=min(5, len(points)))
    link = max(3.0 * float(np.median(spacing[:, -1])), at_least)
    pairs = tree.query_pairs(link, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(points), len(points)))
    return connected_components(graph, directed=False)[1]


def _support_plane(
    points: np.ndarray, up: np.ndarray, focus: np.ndarray, distance: float,
) -> tuple[np.ndarray, float, float] | None:
    """The lowest level plane the product stands on or is part of, seen all around it.

    Returns (normal, height along the normal, spread of its surface in tolerances) or None.
    Height and spread come from the outer half of its points, away from the product: a
    thin base standing on a table lies within the plane's tolerance and would lift both.
    """
    found = _ground_plane(points, up, focus, distance)
    if found is None:
        return None
    n, h = found
    tol = _GROUND_TOLERANCE * distance
    # The plane of the surface alone, not tilted by a base on it. A thin base lies within
    # the tolerance of the table, so the first plane may pass through the table on one
    # side and the base's top on the other; each refit on the outer half of the points
    # within the tolerance, and the points that then fall within it, levels it further.
    for _ in range(_SUPPORT_REFITS):
        on_plane = points[np.abs(points @ n - h) < tol]
        flat = on_plane - focus
        reach = np.linalg.norm(flat - np.outer(flat @ n, n), axis=1)
        outer = on_plane[reach >= np.median(reach)]
        if len(outer) < 10:
            break
        normal = _unit(np.linalg.svd(outer - outer.mean(axis=0))[2][2])
        n = normal if np.dot(normal, n) > 0 else -normal
        h = float(np.median(outer @ n))
    heights = outer @ n
    surface = float(np.median(heights))
    spread = 1.4826 * float(np.median(np.abs(heights - surface))) / tol
    return n, surface, spread


def _above_table(points: np.ndarray, up: np.ndarray, floor: float, spread: float,
                 focus: np.ndarray, distance: float, c2w: np.ndarray,
                 cameras: Sequence[Intrinsics]) -> np.ndarray:
    """The points clear of the table: well above it, or on a thin base standing on it.

    Just above the table's surface lie both the stray points of the table itself, spread
    out to the photos' edges, and the top of a thin base (a baseplate, a mat), a level
    layer that stays inside the photos. Only the second is kept from there.
    """
    tol = _GROUND_TOLERANCE * distance
    heights = points @ up - floor
    clear = heights > 3 * tol  # as far as the table's worst points go
    band = points[(heights > np.clip(2 * spread, 0.3, 3.0) * tol) & ~clear]
    layer = _ground_plane(band, up, focus, distance)
    if layer is None:
        return points[clear]
    n, h = layer
    on_layer = band[np.abs(band @ n - h) < tol]
    # A base is one dense patch; the table's stray points at that height are scattered.
    labels = _linked_groups(on_layer, _LINK_MIN * distance)
    base = on_layer[labels == np.bincount(labels).argmax()]
    # A base hides the table under it; the table's own stray points lie over the table.
    table = points[np.abs(heights) <= np.clip(2 * spread, 0.3, 3.0) * tol]
    if (len(base) < _MIN_BASE_POINTS
            or _inside_footprint(table, base, n) > _BASE_OVER_TABLE * len(base)
            or _reaches_photo_edges(base, n, h, focus, distance, c2w, cameras)):
        return points[clear]
    log.info("a thin level layer stands on the table, inside the photos: the product's base")
    return np.concatenate([points[clear], base])


def _inside_footprint(points: np.ndarray, patch: np.ndarray, up: np.ndarray) -> int:
    """How many of `points` lie, seen from above, inside the outline of `patch`."""
    from scipy.spatial import Delaunay, QhullError

    basis = horizontal_basis(up, np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9
                             else np.array([0.0, 1.0, 0.0]))[:2]
    try:
        outline = Delaunay(patch @ basis.T)
    except QhullError:  # a patch on a line covers nothing
        return 0
    return int((outline.find_simplex(points @ basis.T) >= 0).sum())


def _reaches_photo_edges(points: np.ndarray, up: np.ndarray, height: float, focus: np.ndarray,
                         distance: float, c2w: np.ndarray, cameras: Sequence[Intrinsics]
                         ) -> bool:
    """Whether the level plane at `height` runs out to the edges of most photos.

    A table or floor fills the photos' lower edges and runs out of frame; a product's
    base, framed with the rest of the product, stays inside every photo.
    """
    tol = _GROUND_TOLERANCE * distance
    flat = points - focus
    flat = flat - np.outer(flat @ up, up)
    # Walls far behind meet the plane's height on a line: only what is near the product.
    on_plane = points[(np.abs(points @ up - height) < tol)
                      & (np.linalg.norm(flat, axis=1) < _EDGE_SEARCH * distance)]
    if len(on_plane) == 0:
        return False
    enough = max(3, int(0.01 * len(on_plane)))
    reached = 0
    for pose, camera in zip(c2w, cameras, strict=True):
        w2c = np.linalg.inv(pose)
        local = on_plane @ w2c[:3, :3].T + w2c[:3, 3]
        ahead = local[local[:, 2] > 1e-6 * distance]
        u = camera.fx * ahead[:, 0] / ahead[:, 2] + camera.cx
        v = camera.fy * ahead[:, 1] / ahead[:, 2] + camera.cy
        mu, mv = _EDGE_MARGIN * camera.width, _EDGE_MARGIN * camera.height
        at_edge = (u < mu) | (u > camera.width - mu) | (v < mv) | (v > camera.height - mv)
        reached += int(at_edge.sum() >= enough)
    return reached >= 0.5 * len(c2w)


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
