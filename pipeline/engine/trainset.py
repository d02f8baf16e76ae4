"""The photos the NeRF trains on: downscaled, with the product's mask as alpha.

nerfstudio trains on RGBA images by compositing them over a random colour each step (with
nerfacto's background_color="random"), so the NeRF's accumulation has to learn the alpha.
Its mask_path mechanism would not do that: it only stops masked-out pixels from being
sampled, so the background would never teach the model where the product is not.

Writes WS/dataset/masks/NAME.png (the masks, 8-bit, for inspection and the job page),
WS/dataset/train/NAME.png (RGBA) and WS/dataset/transforms_train.json, which nerfstudio's
own nerfstudio-data parser reads.

Where the NeRF is carved to the masks' visual hull, a ray that misses the hull renders
empty whatever the training does, so training rays are drawn only where the carved hull
projects (WS/dataset/sample/NAME.png, nerfstudio's mask_path, which only steers the pixel
sampler): the background there still teaches where the product is not, and every ray of a
batch lands on or beside the product instead of four in five on empty backdrop.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import (
    OPENCV_TO_OPENGL,
    Frame,
    read_points_ply,
    read_transforms,
)
from .errors import InputError
from .masks import (
    GRABCUT_LONG_SIDE,
    VisualHull,
    alpha_mask,
    grabcut_mask,
    visual_hull_refine,
)
from .product import ProductBox
from .workspace import (
    MASKS_SUBDIR,
    PRODUCT_POINTS_NAME,
    SAMPLE_SUBDIR,
    TRAIN_SUBDIR,
    Workspace,
    write_json_atomic,
)

log = logging.getLogger(__name__)

MIN_PHOTOS = 3
MIN_COVERAGE = 0.002
"""A mask covering less than this share of its photo is treated as a failed mask."""


@dataclass(frozen=True)
class TrainingSet:
    transforms: Path
    names: list[str]
    coverage: list[float]
    """Share of each photo's pixels on the product."""
    image_size: int
    hull: VisualHull | None = None
    """The photos' silhouettes' visual hull (None when it was not made)."""


def read_frames(ws: Workspace) -> list[Frame]:
    try:
        frames = read_transforms(ws.transforms_json)
    except FileNotFoundError:
        raise InputError(f"The workspace {ws.root} has no camera poses yet: run the colmap "
                         "stage first.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{ws.transforms_json} is damaged ({exc!r}): run the colmap stage "
                         "again.") from None
    if len(frames) < MIN_PHOTOS:
        raise InputError(f"Only {len(frames)} photos have camera poses; at least {MIN_PHOTOS} "
                         "are needed to train. Take more photos all around the product.")
    return frames


def spread_evenly(frames: list[Frame], limit: int | None) -> list[Frame]:
    """At most `limit` frames, picked at even steps through the capture's order."""
    if limit is None or len(frames) <= limit:
        return list(frames)
    picks = np.unique(np.round(np.linspace(0, len(frames) - 1, limit)).astype(int))
    return [frames[i] for i in picks]


def sparse_product_points(ws: Workspace, box: ProductBox) -> np.ndarray | None:
    """The product's sparse points inside `box`, in the normalized frame, if any.

    These are the points the colmap stage found to be the product (a thin base standing on
    a table included). A workspace from before that file has only all of COLMAP's points:
    from those, the bottom slice of the box is left out, where they may lie on the table.
    """
    product_points = ws.dataset_dir / PRODUCT_POINTS_NAME
    if product_points.exists():
        xyz, lo = read_points_ply(product_points), box.lo
    else:
        xyz = _colmap_points(ws)
        if xyz is None:
            return None
        lo = box.lo + np.array([0.0, 0.0, 0.1 * (box.hi[2] - box.lo[2])])
    return xyz[((xyz >= lo) & (xyz <= box.hi)).all(axis=1)]


def _colmap_points(ws: Workspace) -> np.ndarray | None:
    """All of COLMAP's sparse points in the normalized frame, or None."""
    if not (ws.colmap_dir / "points3D.bin").exists():
        return None
    try:
        import pycolmap

        doc = json.loads(ws.object_json.read_text())
        to_world = np.asarray(doc["colmap_to_world"], float)
        reconstruction = pycolmap.Reconstruction(str(ws.colmap_dir))
        xyz = np.array([p.xyz for p in reconstruction.points3D.values()], float).reshape(-1, 3)
    except Exception as exc:  # the seeds only help; the masks work without them
        log.warning("could not read the sparse points for mask seeds: %r", exc)
        return None
    return xyz @ to_world[:3, :3].T + to_world[:3, 3]


def prepare_training_set(
    ws: Workspace,
    box: ProductBox,
    *,
    image_size: int,
    max_photos: int | None,
    core: ProductBox | None = None,
    carve_margin: int = 0,
    report: Callable[[float, str], None] | None = None,
) -> TrainingSet:
    """Masks and RGBA training photos for the placed photos, and their transforms file.

    `box` is where the product may be (Product.search_box): the masks find it inside;
    the middle of `core` (Product.points_box; default: the box) is probably product.
    The NeRF will be carved to the returned hull grown by `carve_margin` voxels.
    """
    frames = spread_evenly(read_frames(ws), max_photos)
    points = sparse_product_points(ws, core or box)
    images_dir = ws.dataset_images_dir
    train_dir, mask_dir = ws.dataset_dir / TRAIN_SUBDIR, ws.dataset_dir / MASKS_SUBDIR
    sample_dir = ws.dataset_dir / SAMPLE_SUBDIR
    shutil.rmtree(sample_dir, ignore_errors=True)  # a run without a hull must not find old ones
    for folder in (train_dir, mask_dir):
        folder.mkdir(parents=True, exist_ok=True)

    photos, masks, cameras, mask_cameras, from_alpha = [], [], [], [], []
    for i, frame in enumerate(frames):
        # Masks are made at GrabCut's working size whatever the training size: GrabCut needs
        # enough pixels for its colour models, and tiny test images would starve it.
        photo = _load_photo(images_dir / frame.name, max(image_size, GRABCUT_LONG_SIDE))
        mask_camera = frame.camera.resized(photo.shape[1], photo.shape[0])
        mask = alpha_mask(photo)
        from_alpha.append(mask is not None)
        if mask is None:
            mask = grabcut_mask(photo[..., :3], frame.c2w, mask_camera, box, points, core)
        photo = _fit(photo[..., :3], image_size, Image.Resampling.LANCZOS)
        photos.append(photo)
        masks.append(mask)
        mask_cameras.append(mask_camera)
        cameras.append(frame.camera.resized(photo.shape[1], photo.shape[0]))
        if report is not None:
            report(0.9 * (i + 1) / len(frames), f"masked photo {i + 1}/{len(frames)}")

    cut = [i for i, alpha in enumerate(from_alpha) if not alpha]
    hull = None
    if len(cut) >= MIN_PHOTOS:
        refined, hull = visual_hull_refine([masks[i] for i in cut],
                                           [frames[i].c2w for i in cut],
                                           [mask_cameras[i] for i in cut], box)
        for i, mask in zip(cut, refined, strict=True):
            masks[i] = mask

    carved = hull.dilated(carve_margin) if hull is not None else None
    if carved is not None:
        sample_dir.mkdir(parents=True)
    entries, names, coverage = [], [], []
    for frame, photo, mask, camera in zip(frames, photos, masks, cameras, strict=True):
        # Area resampling keeps the edges' partial coverage as partial alpha.
        mask = np.asarray(Image.fromarray(mask).resize((photo.shape[1], photo.shape[0]),
                                                       Image.Resampling.BOX))
        share = float((mask > 127).mean())
        if share < MIN_COVERAGE:
            log.warning("no product found in %s; it trains as all background", frame.name)
        stem = Path(frame.name).stem
        Image.fromarray(mask).save(mask_dir / f"{stem}.png")
        Image.fromarray(np.dstack([photo, mask])).save(train_dir / f"{stem}.png",
                                                               compress_level=1)
        entry = {"file_path": f"{TRAIN_SUBDIR}/{stem}.png",
                 "transform_matrix": (frame.c2w @ OPENCV_TO_OPENGL).tolist()}
        entry.update(camera.to_json())
        if carved is not None:
            region = carved.projection(frame.c2w, camera, mask.shape)
            Image.fromarray(region.astype(np.uint8) * 255).save(sample_dir / f"{stem}.png")
            entry["mask_path"] = f"{SAMPLE_SUBDIR}/{stem}.png"
        entries.append(entry)
        names.append(frame.name)
        coverage.append(share)
    if report is not None:
        report(1.0, f"masked {len(frames)} photos")

    if sum(c >= MIN_COVERAGE for c in coverage) < MIN_PHOTOS:
        raise InputError("The product could not be told apart from the background in the "
                         "photos. Shoot it against a plain background that differs from it in "
                         "colour, or upload PNGs with a transparent background.")
    path = ws.transforms_train_json
    write_json_atomic(path, {"camera_model": "OPENCV", "frames": entries})
    return TrainingSet(path, names, coverage, image_size, hull)


def _fit(image: np.ndarray, long_side: int, resample: Image.Resampling) -> np.ndarray:
    """`image` downscaled so its long side is at most `long_side`."""
    height, width = image.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, resample))


def _load_photo(path: Path, long_side: int) -> np.ndarray:
    """The photo as RGB or RGBA uint8, downscaled so its long side is at most `long_side`."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGBA") if _has_alpha(img) else img.convert("RGB")
            return _fit(np.asarray(img), long_side, Image.Resampling.LANCZOS)
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the photo {path.name} from the dataset ({exc}); run "
                         "the colmap stage again.") from None


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in {"RGBA", "LA", "PA"} or (img.mode == "P" and "transparency" in img.info)
