"""The product as the colmap stage found it (WS/model/object.json), for training and rendering.

The colmap stage finds the product's box from sparse points. Those often miss a plain top
(a white lid, the crown of a ball): the masks search a taller box, and the train stage
then grows the product's box to the visual hull of the photos' silhouettes
(`save_product_box`), so the frames show the whole product.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .workspace import Workspace, write_json_atomic

# The crop box grows by these fractions of the product's radius: a little on the sides and
# top, where sparse points may miss an edge, and less below, where the ground is.
SIDE_MARGIN = 0.08
BOTTOM_MARGIN = 0.02
# The product's sparse points fit in the unit sphere of the normalized frame; nothing is
# kept beyond this, but above it, where the photos' silhouettes show a top with no points.
FRAME_LIMIT = 1.05
# The masks search up to this share of the box's height above it, for a top with no
# sparse points (on small photos a product's upper half can have next to none)...
HEADROOM = 1.0
# ...but never closer to the cameras than this share of their distance.
HEADROOM_CAMERA_SHARE = 0.5


@dataclass(frozen=True)
class ProductBox:
    """The product's axis-aligned box in the normalized frame (up = +Z)."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def center(self) -> np.ndarray:
        return (self.lo + self.hi) / 2

    def surface_points(self, per_edge: int = 9) -> np.ndarray:
        """Points on the box's faces; their projection outlines the box, distortion included."""
        t = np.linspace(0.0, 1.0, per_edge)
        u, v = (g.ravel() for g in np.meshgrid(t, t))
        faces = []
        for axis in range(3):
            a, b = [i for i in range(3) if i != axis]
            for side in (0.0, 1.0):
                p = np.empty((len(u), 3))
                p[:, axis], p[:, a], p[:, b] = side, u, v
                faces.append(p)
        unit = np.concatenate(faces)
        return self.lo + unit * (self.hi - self.lo)

    def shrunk(self, factor: float) -> ProductBox:
        half = (self.hi - self.lo) / 2 * factor
        return ProductBox(self.center - half, self.center + half)



@dataclass(frozen=True)
class Product:
    box: ProductBox
    """The product's box in the normalized frame: from the sparse points, grown to the
    photos' silhouettes once the masks are made."""
    points_box: ProductBox
    """The box of the product's sparse points, as the colmap stage found it."""
    camera_distance: float
    """Mean distance of the photos from the product's centre."""
    elevation_deg: tuple[float, float, float]
    """Min, mean and max elevation of the photos above the product's centre."""

    @property
    def crop_box(self) -> ProductBox:
        """The box frames are cropped to, and the NeRF samples in."""
        lo = self.box.lo - np.array([SIDE_MARGIN, SIDE_MARGIN, BOTTOM_MARGIN])
        hi = self.box.hi + SIDE_MARGIN
        clipped = _clipped(lo, hi)
        # The top may rise out of the unit sphere where the silhouettes found it.
        return ProductBox(clipped.lo, np.array([*clipped.hi[:2], max(hi[2], clipped.hi[2])]))

    @property
    def search_box(self) -> ProductBox:
        """Where the masks look for the product: the sparse points' box with margins, and
        headroom above it."""
        lo, hi = self.points_box.lo, self.points_box.hi
        top = min(hi[2] + SIDE_MARGIN + HEADROOM * (hi[2] - lo[2]),
                  HEADROOM_CAMERA_SHARE * self.camera_distance)
        box = _clipped(lo - np.array([SIDE_MARGIN, SIDE_MARGIN, BOTTOM_MARGIN]),
                       hi + SIDE_MARGIN)
        return ProductBox(box.lo, np.array([box.hi[0], box.hi[1], max(top, box.hi[2])]))


def _clipped(lo: np.ndarray, hi: np.ndarray) -> ProductBox:
    limit = FRAME_LIMIT
    return ProductBox(np.clip(lo, -limit, limit), np.clip(hi, -limit, limit))


def load_product(ws: Workspace) -> Product:
    if not ws.object_json.exists() or not ws.transforms_json.exists():
        raise InputError(
            f"The workspace {ws.root} has no camera poses yet: run the colmap stage first "
            "(python -m pipeline.engine colmap --workspace WS --images DIR).")
    try:
        doc = json.loads(ws.object_json.read_text())
        lo, hi = np.array(doc["bbox_min"], float), np.array(doc["bbox_max"], float)
        points_lo = np.array(doc.get("points_bbox_min", doc["bbox_min"]), float)
        points_hi = np.array(doc.get("points_bbox_max", doc["bbox_max"]), float)
        distance = float(doc["camera_distance"]["mean"])
        el = doc["elevation_deg"]
        elevation = (float(el["min"]), float(el["mean"]), float(el["max"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{ws.object_json} is damaged ({exc!r}): run the colmap stage "
                         "again.") from None
    if any(v.shape != (3,) for v in (lo, hi, points_lo, points_hi)) or not (
            (hi > lo).all() and (points_hi > points_lo).all()) or distance <= 0:
        raise InputError(f"{ws.object_json} describes no usable product box: run the colmap "
                         "stage again.")
    return Product(ProductBox(lo, hi), ProductBox(points_lo, points_hi), distance, elevation)


def save_product_box(ws: Workspace, silhouettes: ProductBox) -> Product:
    """Grows the product's box to the visual hull of its silhouettes (never beyond the
    search box, never smaller than the sparse points' box) and records it in object.json."""
    product = load_product(ws)
    search = product.search_box
    lo = np.minimum(product.points_box.lo, np.maximum(silhouettes.lo, search.lo))
    hi = np.maximum(product.points_box.hi, np.minimum(silhouettes.hi, search.hi))
    doc = json.loads(ws.object_json.read_text())
    doc.setdefault("points_bbox_min", doc["bbox_min"])
    doc.setdefault("points_bbox_max", doc["bbox_max"])
    doc["bbox_min"] = [round(float(v), 6) for v in lo]
    doc["bbox_max"] = [round(float(v), 6) for v in hi]
    write_json_atomic(ws.object_json, doc)
    return load_product(ws)
