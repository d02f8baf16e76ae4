"""How faithful the spin is: a few photos beside renders from their own cameras.

After the frames, the render stage picks COMPARE_VIEWS placed photos spread around the
product, renders each at the photo's own pose and intrinsics with the same code and crop
box as the frames (render.render_view), and compares the two over white, on a crop around
the product:

- PSNR (dB) and SSIM of the photo's product pixels (its mask) against the render;
- alpha IoU: how well the render's outline covers the photo's mask.

One verdict for the shop owner follows from their means (VERDICT_RULES). Views are worked
at the size the model trained on, at most MAX_LONG_SIDE: finer than that the model never
saw, and on a CPU it keeps the comparison to seconds.

Writes WS/frames/compare/photo_N.jpg (the photo's product over white), render_N.png (RGBA,
straight alpha) and compare.json.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .dataset import OPENCV_TO_OPENGL, Frame, Intrinsics, read_transforms
from .workspace import (
    COMPARE_JSON,
    COMPARE_PHOTO_NAME,
    COMPARE_RENDER_NAME,
    MASKS_SUBDIR,
    Workspace,
    write_json_atomic,
)

log = logging.getLogger(__name__)

COMPARE_VIEWS = 3
MAX_LONG_SIDE = 480
CROP_MARGIN = 0.08
"""The crop around the product grows by this share of its longer side on every edge."""

# The verdict's thresholds, on the views' mean metrics, checked in this order. Scores are
# taken on a tight crop around the product, so the white backdrop cannot flatter them.
# - Faithful: the scene's own ray caster rendered from the photos' cameras (a perfect
#   model; tests/engine/test_compare.py) scores about 30 dB, SSIM 0.98 and alpha IoU 0.99;
#   25 dB with SSIM 0.9 leaves no difference a shopper would see at this size.
# - Fair: an outline overlapping 85 % is the right shape with soft edges, and 20 dB with
#   SSIM 0.7 keeps the right colours; what is missing is the fine detail more steps bring.
# - Poor: anything less. The tests' 120-step CPU model, a grey blob of the right shape and
#   none of the product's colours, scores 18.4 dB, SSIM 0.67 and alpha IoU 0.95: poor.
VERDICT_RULES: tuple[tuple[str, dict[str, float]], ...] = (
    ("faithful", {"psnr": 25.0, "ssim": 0.90, "alpha_iou": 0.90}),
    ("fair", {"psnr": 20.0, "ssim": 0.70, "alpha_iou": 0.85}),
)
VERDICT_TEXT = {
    "faithful": "Faithful: the spin matches your photos closely.",
    "fair": "Fair: the shape is right but fine detail is soft; a higher preset will "
            "sharpen it.",
    "poor": "Poor: the spin does not match your photos. With a quick preset, try a higher "
            "one; otherwise check the photos that were left out and retake them all around "
            "the product in even light.",
}


@dataclass(frozen=True)
class ComparisonView:
    photo: str
    frame: Frame
    mask_path: Path


def pick_views(ws: Workspace, count: int = COMPARE_VIEWS) -> list[ComparisonView]:
    """Up to `count` placed photos with a mask, spread evenly by azimuth around the product.

    Azimuth is measured around the normalized frame's up axis (+Z) through the origin, the
    product's centre (see orbit.py).
    """
    try:
        frames = read_transforms(ws.transforms_json)
    except (OSError, ValueError, KeyError, TypeError):
        return []
    mask_dir = ws.dataset_dir / MASKS_SUBDIR
    views = [ComparisonView(f.name, f, mask_dir / f"{Path(f.name).stem}.png") for f in frames
             if (mask_dir / f"{Path(f.name).stem}.png").exists()
             and (ws.dataset_images_dir / f.name).exists()]
    if len(views) <= count:
        return views
    views.sort(key=lambda v: _azimuth(v.frame.c2w))
    picks = np.round(np.linspace(0, len(views), count, endpoint=False)).astype(int)
    return [views[i] for i in picks]


def compare_views(
    ws: Workspace,
    views: list[ComparisonView],
    render: Callable[[np.ndarray, Intrinsics], np.ndarray],
    *,
    on_view: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Renders and scores each view, writes the images and compare.json; returns it.

    `render(c2w_opengl, camera)` gives the RGBA uint8 image of one camera. A view whose
    photo or mask cannot be read is left out: a damaged photo never fails the frames.
    """
    out_dir = ws.compare_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for n, view in enumerate(views, start=1):
        try:
            photo, mask, camera = _load_view(ws, view)
        except (OSError, ValueError) as exc:
            log.warning("comparison: cannot read %s (%s); left out", view.photo, exc)
            continue
        rgba = render(view.frame.c2w @ OPENCV_TO_OPENGL, camera)
        crop = _crop(mask, rgba[..., 3])
        photo, mask, rgba = photo[crop], mask[crop], rgba[crop]
        metrics = score(photo, mask, rgba)
        photo_file, render_file = COMPARE_PHOTO_NAME.format(n), COMPARE_RENDER_NAME.format(n)
        Image.fromarray(_to_uint8(over_white(photo, mask))).save(out_dir / photo_file,
                                                                 quality=90)
        Image.fromarray(rgba).save(out_dir / render_file)
        results.append({"photo": view.photo, "photo_file": photo_file,
                        "render_file": render_file,
                        "azimuth_deg": round(_azimuth(view.frame.c2w), 1),
                        "width": int(rgba.shape[1]), "height": int(rgba.shape[0]),
                        **metrics})
        if on_view is not None:
            on_view(n)
    doc = summary(results)
    write_json_atomic(out_dir / COMPARE_JSON, doc)
    return doc


def summary(views: list[dict[str, Any]]) -> dict[str, Any]:
    """compare.json: the views, their mean metrics and the verdict (None without views),
    with the thresholds behind it (the site words each score by them)."""
    means = {k: round(float(np.mean([v[k] for v in views])), 3)
             for k in ("psnr", "ssim", "alpha_iou")} if views else None
    name = verdict(means) if means else None
    return {"verdict": name, "verdict_text": VERDICT_TEXT.get(name or "", ""),
            "mean": means, "thresholds": dict(VERDICT_RULES), "views": views}


def verdict(metrics: dict[str, float]) -> str:
    for name, floor in VERDICT_RULES:
        if all(metrics[k] >= v for k, v in floor.items()):
            return name
    return "poor"


def score(photo: np.ndarray, mask: np.ndarray, rgba: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of the photo's product over white against the render over white,
    and the IoU of the mask and the render's alpha (both cut at one half)."""
    truth = over_white(photo, mask)
    ours = over_white(rgba[..., :3], rgba[..., 3])
    mse = float(np.mean((truth - ours) ** 2))
    a, b = mask > 127, rgba[..., 3] > 127
    union = int((a | b).sum())
    return {"psnr": round(10 * math.log10(1.0 / max(mse, 1e-10)), 2),
            "ssim": round(ssim(truth, ours), 4),
            "alpha_iou": round(float((a & b).sum() / union) if union else 1.0, 4)}


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] of uint8 `rgb` composited over white by uint8 `alpha`."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return rgb.astype(np.float64) / 255.0 * a + (1.0 - a)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11-tap Gaussian window, sigma 1.5) over the channels of
    two float images in [0, 1]. OpenCV's blur reflects at the borders, so crops smaller
    than the window still get a score (scikit-image refuses them)."""
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(index.mean())


def _load_view(ws: Workspace, view: ComparisonView
               ) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """The photo (RGB uint8) and mask (uint8) at the working size, and the pinhole camera
    that sees them: the mask's size (the training size) capped at MAX_LONG_SIDE."""
    with Image.open(view.mask_path) as img:
        mask = img.convert("L")
        scale = min(1.0, MAX_LONG_SIDE / max(mask.size))
        size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
        mask_arr = np.asarray(mask.resize(size, Image.Resampling.BOX))
    with Image.open(ws.dataset_images_dir / view.photo) as img:
        photo = np.asarray(img.convert("RGB").resize(size, Image.Resampling.LANCZOS))
    camera = view.frame.camera.resized(*size)
    dist = np.array([camera.k1, camera.k2, camera.p1, camera.p2], float)
    if dist.any():
        # render_view casts pinhole rays: take the lens distortion out of photo and mask.
        k = camera.matrix()
        photo = cv2.undistort(photo, k, dist)
        mask_arr = cv2.undistort(mask_arr, k, dist)
    pinhole = Intrinsics(camera.width, camera.height, camera.fx, camera.fy, camera.cx,
                         camera.cy)
    return photo, mask_arr, pinhole


def _crop(mask: np.ndarray, alpha: np.ndarray) -> tuple[slice, slice]:
    """The rectangle around the product in the photo or the render, with a margin."""
    ys, xs = np.nonzero((mask > 127) | (alpha > 127))
    height, width = mask.shape
    if len(xs) == 0:
        return slice(0, height), slice(0, width)
    pad = max(2, round(CROP_MARGIN * max(np.ptp(xs), np.ptp(ys))))
    return (slice(max(0, ys.min() - pad), min(height, ys.max() + pad + 1)),
            slice(max(0, xs.min() - pad), min(width, xs.max() + pad + 1)))


def _azimuth(c2w: np.ndarray) -> float:
    """Degrees in [0, 360) of the camera's position around +Z."""
    return math.degrees(math.atan2(c2w[1, 3], c2w[0, 3])) % 360.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
