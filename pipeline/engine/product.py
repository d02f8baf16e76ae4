"""The product as the colmap stage found it (WS/model/object.json), for training and rendering."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .masks import ProductBox
from .workspace import Workspace

# The crop box grows by these fractions of the product's radius: a little on the sides and
# top, where sparse points may miss an edge, and less below, where the ground is.
SIDE_MARGIN = 0.08
BOTTOM_MARGIN = 0.02
# The product fits in the unit sphere of the normalized frame; nothing is kept beyond this.
FRAME_LIMIT = 1.05


@dataclass(frozen=True)
class Product:
    box: ProductBox
    """The product's box as found, in the normalized frame."""
    camera_distance: float
    """Mean distance of the photos from the product's centre."""
    elevation_deg: tuple[float, float, float]
    """Min, mean and max elevation of the photos above the product's centre."""

    @property
    def crop_box(self) -> ProductBox:
        """The box frames are cropped to, and the NeRF samples in."""
        lo = self.box.lo - np.array([SIDE_MARGIN, SIDE_MARGIN, BOTTOM_MARGIN])
        hi = self.box.hi + SIDE_MARGIN
        return ProductBox(np.clip(lo, -FRAME_LIMIT, FRAME_LIMIT),
                          np.clip(hi, -FRAME_LIMIT, FRAME_LIMIT))


def load_product(ws: Workspace) -> Product:
    if not ws.object_json.exists() or not ws.transforms_json.exists():
        raise InputError(
            f"The workspace {ws.root} has no camera poses yet: run the colmap stage first "
            "(python -m pipeline.engine colmap --workspace WS --images DIR).")
    try:
        doc = json.loads(ws.object_json.read_text())
        lo, hi = np.array(doc["bbox_min"], float), np.array(doc["bbox_max"], float)
        distance = float(doc["camera_distance"]["mean"])
        el = doc["elevation_deg"]
        elevation = (float(el["min"]), float(el["mean"]), float(el["max"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{ws.object_json} is damaged ({exc!r}): run the colmap stage "
                         "again.") from None
    if lo.shape != (3,) or hi.shape != (3,) or not (hi > lo).all() or distance <= 0:
        raise InputError(f"{ws.object_json} describes no usable product box: run the colmap "
                         "stage again.")
    return Product(ProductBox(lo, hi), distance, elevation)
