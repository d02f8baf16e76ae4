"""What the masks kept of each photo, for the shop owner to see: an overlay thumbnail per
trained photo, flagged where its mask covers too little or too much.

A mask that lost part of the product shows in the spin as a missing piece; one that kept
the table or backdrop shows as a slab under the product. Both are easiest to see on the
photo itself, so each overlay dims and tints what the mask calls background and outlines
the product. The flags compare each mask with the others of the same capture (a product
fills a similar share of every photo when the photographer walks around it) and with the
photo's edge (a product seldom touches it; a table nearly always does).

Writes WS/frames/compare/mask_N.jpg and masks.json beside the comparison (compare.py), so
the site collects them with it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from .dataset import read_transforms
from .workspace import (
    MASK_OVERLAY_NAME,
    MASKS_JSON,
    MASKS_SUBDIR,
    Workspace,
    write_json_atomic,
)

log = logging.getLogger(__name__)

THUMB_LONG_SIDE = 320
# Flags, against the median share of the frame the capture's masks cover.
TOO_LITTLE = 0.5
"""A mask covering less than this share of the median lost part of the product."""
TOO_MUCH = 1.8
"""…more than this multiple of it kept something around the product."""
EDGE_BAND = 0.02
"""The outer band of the photo (share of its short side) whose coverage is checked."""
EDGE_LIMIT = 0.25
"""A mask covering more of that band than this kept the table, floor or backdrop."""
FLAG_TEXT = {
    "too_little": "The mask covers much less than in the other photos: part of the product "
                  "may be missing from this view. Retake it with the whole product in frame, "
                  "against a background that differs from it.",
    "too_much": "The mask covers much more than in the other photos: the table or backdrop "
                "may have been kept. Use a plain background that differs from the product.",
    "edge": "The mask reaches far along the photo's edge: the table, floor or backdrop was "
            "probably kept. Use a plain background, or leave space around the product.",
}


def review_masks(ws: Workspace) -> dict[str, Any] | None:
    """Write an overlay per trained photo and masks.json; return masks.json's content, or
    None when the workspace has no masks (a render-only job)."""
    try:
        frames = read_transforms(ws.transforms_json)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    mask_dir, images_dir = ws.dataset_dir / MASKS_SUBDIR, ws.dataset_images_dir
    out_dir = ws.compare_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for frame in frames:
        mask_path = mask_dir / f"{Path(frame.name).stem}.png"
        try:
            with Image.open(mask_path) as m, Image.open(images_dir / frame.name) as p:
                mask = m.convert("L")
                photo = p.convert("RGB").resize(mask.size, Image.Resampling.LANCZOS)
        except OSError as exc:
            log.warning("mask review: cannot read %s (%s); left out", frame.name, exc)
            continue
        n = len(entries) + 1
        overlay(photo, mask).save(out_dir / MASK_OVERLAY_NAME.format(n), quality=85)
        binary = np.asarray(mask) > 127
        entries.append({"photo": frame.name, "file": MASK_OVERLAY_NAME.format(n),
                        "coverage": round(float(binary.mean()), 4),
                        "edge": round(edge_coverage(binary), 4)})
    if not entries:
        return None
    doc = {"masks": flag(entries)}
    write_json_atomic(out_dir / MASKS_JSON, doc)
    return doc


def flag(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add `flag` (None, "too_little", "too_much" or "edge") and its `advice` to each."""
    median = float(np.median([e["coverage"] for e in entries]))
    for entry in entries:
        if entry["coverage"] < TOO_LITTLE * median:
            entry["flag"] = "too_little"
        elif entry["edge"] > EDGE_LIMIT:
            entry["flag"] = "edge"
        elif entry["coverage"] > TOO_MUCH * median:
            entry["flag"] = "too_much"
        else:
            entry["flag"] = None
        entry["advice"] = FLAG_TEXT.get(entry["flag"], "")
    return entries


def edge_coverage(mask: np.ndarray) -> float:
    """Share of the photo's outer band (EDGE_BAND of the short side) the mask covers."""
    band = max(1, round(EDGE_BAND * min(mask.shape)))
    edge = np.ones_like(mask, dtype=bool)
    edge[band:-band, band:-band] = False
    return float(mask[edge].mean())


def overlay(photo: Image.Image, mask: Image.Image) -> Image.Image:
    """The photo at thumbnail size: product as shot, background dimmed and tinted blue,
    the mask's outline in orange."""
    scale = THUMB_LONG_SIDE / max(photo.size)
    if scale < 1:
        size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
        photo = photo.resize(size, Image.Resampling.LANCZOS)
        mask = mask.resize(size, Image.Resampling.BOX)
    rgb = np.asarray(photo, dtype=np.float32)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    dimmed = rgb * 0.35 + np.array([20, 40, 110], np.float32)
    out = rgb * alpha + dimmed * (1 - alpha)
    binary = mask.point(lambda v: 255 if v > 127 else 0)
    outline = np.asarray(binary.filter(ImageFilter.MaxFilter(3))) != np.asarray(
        binary.filter(ImageFilter.MinFilter(3)))
    out[outline] = (255, 140, 0)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
