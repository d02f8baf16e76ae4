"""The colmap stage: photos in, camera poses, a nerfstudio dataset and the product out.

    photos ─ normalize ─▶ WS/images.zip, colmap/images/ (copies for features, removed after)
           ─ extract ─ pair ─ match ─ map (pycolmap) ─▶ colmap/{cameras,images,points3D}.bin
             (and, only for photos left unplaced: match them with every photo, extend the
             model with them)
           ─ locate the product, normalize ─▶ dataset/transforms.json, dataset/images/,
                                              dataset/{sparse,product}_points.ply,
                                              model/object.json, colmap/summary.json

pycolmap's defaults are tuned for large, well-textured captures; product photos are few,
often dark or glossy and far apart, and a CPU pays for every pair it matches. Every step
runs once per photo (see bench/poses.py for the numbers against the defaults):

- features: affine-adapted SIFT (it keeps matching across the wide angles between
  product shots, at the plain SIFT's cost on a CPU) on the photo downscaled to
  FEATURE_IMAGE_SIZE, the photo's side where SIFT's upsampled first octave still finds
  the details of a dark, glossy product and no more;
- pairs: each photo with its neighbours in shooting order and the photos that look most
  like it (pairs.py), not every other photo;
- mapping, then, only when photos are left out, those photos matched with every photo
  they were not matched with yet, and the model extended with them: no feature is
  extracted and no pair matched twice.
"""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import (
    PRODUCT_POINTS_NAME,
    SPARSE_POINTS_NAME,
    Frame,
    Intrinsics,
    write_points_ply,
    write_transforms,
)
from .errors import InputError
from .images import Photo, normalize_photos, pack_zip, resize_photo
from .pairs import capture_pairs, pair_list
from .pose_check import check_poses
from .progress import Progress
from .scene import describe_object, locate_object, transform_points, transform_poses
from .workspace import Workspace, write_json_atomic

log = logging.getLogger(__name__)

FEATURE_IMAGE_SIZE = 1200
"""The long side SIFT sees (at most the job's max_image_size). On the skull photos it
placed 29/29 as 1600 did, at half the extraction's and a third of the matching's CPU
seconds; COLMAP keeps the keypoints in full-size pixels, so the poses stay precise."""
RANSAC_TRIALS = 1000
"""Geometric verification's cap for the chosen pairs: overlapping pairs converge long
before, and a pair that needs more is matched again, uncapped, when its photo is left out."""
MIN_PLACED = 3
MIN_LINK_MATCHES = 15  # verified matches that make two photos overlap
FEW_KEYPOINTS = 300

RETAKE_ADVICE = ("Retake them walking all around the product with a lot of overlap between "
                 "shots (about 10° apart), in even light, against a background that is not "
                 "plain, and avoid reflections.")

# Share of the stage each step takes, for the progress bar.
_STEPS = {"read": (0.0, 0.08), "extract": (0.08, 0.5), "pair": (0.5, 0.52),
          "match": (0.52, 0.75), "map": (0.75, 0.85), "extend": (0.85, 0.95),
          "write": (0.95, 1.0)}


@dataclass
class PoseResult:
    total: int
    placed: int
    mean_reprojection_error: float
    unplaced: list[str]
    matcher: str
    timings: dict[str, float] = field(default_factory=dict)

    def summary_line(self) -> str:
        line = (f"Placed {self.placed} of {self.total} photos, mean reprojection error "
                f"{self.mean_reprojection_error:.2f} px.")
        if self.unplaced:
            line += " Not placed: " + ", ".join(self.unplaced) + "."
        return line


@dataclass(frozen=True)
class _Input:
    photo: Photo
    colmap_name: str  # path under colmap/images/, one folder per camera when several


def estimate_poses(
    ws: Workspace,
    images: Path | None = None,
    max_image_size: int = 1600,
    matcher: str = "auto",
    progress: Progress | None = None,
) -> PoseResult:
    """Runs the whole stage on `images` (a folder or zip) or, without it, WS/images.zip.

    Raises InputError with a message for the shop owner when the photos cannot be used.
    """
    import pycolmap

    report = progress or Progress(ws.progress_json, "colmap", show_bar=False)
    if matcher not in ("auto", "exhaustive", "sequential"):
        raise InputError(f"Unknown matcher {matcher!r}: use auto, exhaustive or sequential.")
    if max_image_size < 200:
        raise InputError(f"--max-image-size {max_image_size} is too small: use 200 or more.")
    pycolmap.set_random_seed(0)  # the same photos give the same poses
    # COLMAP's own per-image log drowns the progress bar; -v (debug) brings it back.
    pycolmap.logging.minloglevel = 0 if log.isEnabledFor(logging.DEBUG) else 1
    timings: dict[str, float] = {}

    _step(report, "read", 0.0, "Reading the photos")
    started = time.monotonic()
    inputs = _prepare_photos(ws, images, max_image_size, report)
    timings["read"] = time.monotonic() - started
    total = len(inputs)
    names = [i.photo.name for i in inputs]
    report.update(report.fraction, total=total)

    database = ws.colmap_dir / "database.db"
    colmap_names = [i.colmap_name for i in inputs]
    started = time.monotonic()
    feature_side = min(max_image_size, FEATURE_IMAGE_SIZE)
    _extract(database, ws.colmap_dir / "images", colmap_names, report,
             max_image_size=feature_side)
    timings["extract"] = time.monotonic() - started

    started = time.monotonic()
    _step(report, "pair", 0.0, "Choosing which photos to match")
    pairs = (capture_pairs(database, colmap_names) if matcher == "auto"
             else pair_list(total, matcher))
    report.log(f"Matching {len(pairs)} of {total * (total - 1) // 2} pairs of photos")
    timings["pair"] = time.monotonic() - started

    started = time.monotonic()
    _match(database, ws.colmap_dir, colmap_names, pairs, report,
           max_trials=RANSAC_TRIALS)
    timings["match"] = time.monotonic() - started

    started = time.monotonic()
    models = _map(database, ws.colmap_dir, total, report)
    timings["map"] = time.monotonic() - started

    left_out = _unplaced_names(models, colmap_names)
    if left_out:
        started = time.monotonic()
        models = _extend(database, ws.colmap_dir, colmap_names, left_out, set(pairs),
                         models, report)
        timings["extend"] = time.monotonic() - started

    _step(report, "write", 0.0, "Writing the dataset")
    started = time.monotonic()
    best = max(models, key=lambda r: r.num_reg_images(), default=None)
    # A wrong camera must never reach training: check every pose before anything is written.
    by_colmap = {i.colmap_name: i.photo.name for i in inputs}
    verdicts = (check_poses(best, database, colmap_names, by_colmap.get, feature_side)
                if best else [])
    placed_names = _placed_names(best, inputs)
    reasons = _reasons(database, inputs, placed_names, models)
    for verdict in verdicts:
        if not verdict.replaced:
            reasons[by_colmap[verdict.name]] = verdict.reason
    error = float(best.compute_mean_reprojection_error()) if best is not None else 0.0
    unplaced = [n for n in names if n not in placed_names]
    result = PoseResult(total, len(placed_names), round(error, 3), unplaced, matcher, timings)
    report.update(report.fraction, placed=result.placed, total=total,
                  mean_reprojection_error=result.mean_reprojection_error, unplaced=unplaced)
    for name in unplaced:
        report.log(f"Not placed: {name} ({reasons[name]})")

    positions: dict[str, list[float]] = {}
    if best is not None and len(placed_names) >= MIN_PLACED:
        positions = _write_outputs(ws, best, inputs, max_image_size)
    timings["write"] = time.monotonic() - started
    result.timings = {k: round(v, 2) for k, v in timings.items()}
    _write_summary(ws, result, names, placed_names, positions, reasons)
    # The site draws where each photo was taken from this, on success and on failure.
    report.update(report.fraction, cameras=_camera_list(names, placed_names, positions,
                                                        reasons))
    # images.zip keeps the photos; nothing reads the full-size copies COLMAP read again.
    for folder in ("photos", "images"):
        shutil.rmtree(ws.colmap_dir / folder, ignore_errors=True)

    if result.placed < MIN_PLACED or result.placed * 2 < total:
        raise InputError(f"Only {result.placed} of {total} photos could be placed, too few "
                         f"to build the 3D model. {RETAKE_ADVICE}")
    report.done(result.summary_line(), placed=result.placed, total=total,
                mean_reprojection_error=result.mean_reprojection_error, unplaced=unplaced)
    return result


def _step(report: Progress, step: str, fraction: float, message: str | None = None) -> None:
    lo, hi = _STEPS[step]
    report.update(lo + (hi - lo) * fraction, message)


def _prepare_photos(ws: Workspace, images: Path | None, max_image_size: int,
                    report: Progress) -> list[_Input]:
    source = Path(images) if images is not None else ws.images_zip
    if images is None and not source.exists():
        raise InputError("This job has no photos yet (no images.zip in the workspace); "
                         "upload the photos, or pass --images FOLDER.")
    # A new run starts clean: old poses must never mix with new photos.
    shutil.rmtree(ws.colmap_dir, ignore_errors=True)
    shutil.rmtree(ws.dataset_dir, ignore_errors=True)
    ws.object_json.unlink(missing_ok=True)
    photos_dir = ws.colmap_dir / "photos"
    photo_set = normalize_photos(source, photos_dir, warn=report.log)
    photos = photo_set.photos
    if len(photos) < MIN_PLACED:
        copies = (f" after leaving out {len(photo_set.duplicates)} identical copies"
                  if photo_set.duplicates else "")
        raise InputError(f"Only {len(photos)} different photo{'s' * (len(photos) != 1)}"
                         f"{copies}: at least {MIN_PLACED} are needed, and 20 or more taken "
                         "all around the product work best.")
    if images is not None:
        pack_zip(photos_dir, [p.name for p in photos], ws.images_zip)

    # One camera (one set of intrinsics) per device and image size.
    groups = sorted({p.camera_key for p in photos})
    folder = {key: (f"camera_{n + 1}/" if len(groups) > 1 else "") for n, key in
              enumerate(groups)}
    inputs = []
    for n, photo in enumerate(photos):
        colmap_name = folder[photo.camera_key] + photo.name
        dest = ws.colmap_dir / "images" / colmap_name
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Full size: COLMAP downscales for SIFT itself (extraction's max_image_size) and
        # keeps the keypoints in full-size pixels. Handing it copies we downscaled first
        # cost rotation accuracy on the 50-photo bench (0.076° against 0.051° median).
        resize_photo(photos_dir / photo.name, dest, None, flatten=True)
        inputs.append(_Input(photo, colmap_name))
        _step(report, "read", (n + 1) / len(photos))
    report.log(f"{len(photos)} photos from {len(groups)} camera"
               f"{'s' * (len(groups) != 1)}")
    return inputs


def _extraction_options(max_image_size: int) -> Any:
    import pycolmap

    options = pycolmap.FeatureExtractionOptions()
    options.max_image_size = max_image_size
    # Affine-adapted SIFT keeps matching across the wide angle between product shots: on
    # the skull photos it is the difference between 10 and 29 placed, and on a CPU it
    # costs what plain SIFT does. The rest as pycolmap's defaults (upsampled first octave,
    # 8192 features): without the upsampling the skull kept 8 of 29.
    options.sift.estimate_affine_shape = True
    return options


def _extract(database: Path, image_dir: Path, names: list[str], report: Progress, *,
             max_image_size: int) -> None:
    import pycolmap

    _step(report, "extract", 0.0, "Finding details in the photos")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    mode = pycolmap.CameraMode.PER_FOLDER if "/" in names[0] else pycolmap.CameraMode.SINGLE
    # Import every photo first so the cameras are shared, then extract in chunks for the
    # progress bar: extraction fills in images already in the database.
    with pycolmap.Database.open(database):
        pass  # creates the empty database
    pycolmap.import_images(database, image_dir, camera_mode=mode, image_names=names,
                           options=reader)
    options = _extraction_options(max_image_size)
    chunk = max(1, math.ceil(len(names) / 10))
    for start in range(0, len(names), chunk):
        pycolmap.extract_features(database, image_dir, image_names=names[start:start + chunk],
                                  camera_mode=mode, reader_options=reader,
                                  extraction_options=options)
        done = min(len(names), start + chunk)
        _step(report, "extract", done / len(names),
              f"Finding details in the photos ({done}/{len(names)})")


def _match(database: Path, colmap_dir: Path, names: list[str], pairs: list[tuple[int, int]],
           report: Progress, *, max_trials: int | None = None, step: str = "match",
           span: tuple[float, float] = (0.0, 1.0)) -> None:
    """Matches and verifies `pairs`; `max_trials` caps RANSAC (None: COLMAP's own)."""
    import pycolmap

    lo, hi = span
    _step(report, step, lo, "Matching the photos")
    matching = pycolmap.FeatureMatchingOptions()
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = 0
    if max_trials is not None:
        verification.ransac.max_num_trials = max_trials
    # Matched in chunks through a pair list, so the bar moves while it works.
    chunk = max(1, math.ceil(len(pairs) / 10))
    pair_file = colmap_dir / "pairs.txt"
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        pair_file.write_text("".join(f"{names[a]} {names[b]}\n" for a, b in part))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pair_file
        pycolmap.match_image_pairs(database, matching_options=matching,
                                   pairing_options=pairing, verification_options=verification)
        done = start + len(part)
        _step(report, step, lo + (hi - lo) * done / len(pairs),
              f"Matching the photos ({done}/{len(pairs)} pairs)")


def _mapping_options() -> Any:
    import pycolmap

    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = MIN_PLACED
    options.random_seed = 0
    mapper = options.mapper
    # A product capture has few photos and wide angles between them: start from a pair
    # with fewer matches and admit photos seen by fewer points than COLMAP's defaults.
    mapper.init_min_num_inliers = 50
    mapper.init_min_tri_angle = 8.0
    mapper.abs_pose_min_num_inliers = 15
    return options


def _map(database: Path, colmap_dir: Path, total: int, report: Progress, *,
         step: str = "map", span: tuple[float, float] = (0.0, 1.0),
         start_from: Any = None) -> list[Any]:
    """Incremental mapping; from scratch, or extending the model `start_from`."""
    import pycolmap

    lo, hi = span
    _step(report, step, lo, "Placing the photos in 3D")
    registered = 0 if start_from is None else start_from.num_reg_images()

    def on_next_image() -> None:
        nonlocal registered
        registered += 1
        _step(report, step, lo + (hi - lo) * min(registered / total, 1.0),
              f"Placing the photos in 3D ({min(registered, total)}/{total})")

    out, start = colmap_dir / "models", colmap_dir / "start"
    for folder in (out, start):  # a second mapping must not mix with the first
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    if start_from is not None:
        start_from.write(start)
    models = pycolmap.incremental_mapping(database, colmap_dir / "images", out,
                                          options=_mapping_options(),
                                          input_path=start if start_from is not None else "",
                                          next_image_callback=on_next_image)
    shutil.rmtree(start, ignore_errors=True)
    return list(models.values())


def _unplaced_names(models: list[Any], names: list[str]) -> list[str]:
    """Photos (by colmap name) outside the largest model, in shooting order."""
    best = max(models, key=lambda r: r.num_reg_images(), default=None)
    placed = set() if best is None else {best.image(i).name for i in best.reg_image_ids()}
    return [n for n in names if n not in placed]


def _extend(database: Path, colmap_dir: Path, names: list[str], left_out: list[str],
            matched: set[tuple[int, int]], models: list[Any], report: Progress
            ) -> list[Any]:
    """Places the photos in `left_out` by extending the largest model with them.

    They are matched, RANSAC to its full length, with every photo they were not matched
    with yet, then the photos they turn out to overlap are matched with each other too:
    a photo is placed from the 3D points its matches see, and those points come from its
    partners' matches with each other.
    """
    _step(report, "extend", 0.0, f"Looking harder at {len(left_out)} photos not placed")
    report.log(f"{len(left_out)} of {len(names)} photos not placed yet: matching them with "
               "every other photo")
    index = {n: k for k, n in enumerate(names)}
    lost = {index[n] for n in left_out}
    pairs = {tuple(sorted((k, other))) for k in lost for other in range(len(names))
             if other != k} - matched
    _match(database, colmap_dir, names, sorted(pairs), report, step="extend",
           span=(0.0, 0.5))
    matched = matched | pairs
    around = lost | {index[n] for n in _overlapping(database, [names[k] for k in lost])}
    pairs = {p for p in itertools.combinations(sorted(around), 2)} - matched
    if pairs:
        _match(database, colmap_dir, names, sorted(pairs), report, step="extend",
               span=(0.5, 0.8))
    best = max(models, key=lambda r: r.num_reg_images(), default=None)
    if best is not None:
        _triangulate_new_matches(database, best)
    extended = _map(database, colmap_dir, len(names), report, step="extend",
                    span=(0.8, 1.0), start_from=best)
    return extended or models


def _triangulate_new_matches(database: Path, model: Any) -> None:
    """Adds to `model` the 3D points its placed photos' new matches with each other make:
    mapping registers a photo from the points its matches see, and extending a model
    triangulates only the photos it adds."""
    import pycolmap

    options = _mapping_options()
    cache_options = pycolmap.DatabaseCacheOptions()
    cache_options.min_num_matches = options.min_num_matches
    with pycolmap.Database.open(database) as db:
        cache = pycolmap.DatabaseCache.create(db, cache_options)
    mapper = pycolmap.IncrementalMapper(cache)
    mapper.begin_reconstruction(model)
    for image_id in model.reg_image_ids():
        mapper.triangulate_image(options.triangulation, image_id)
    mapper.end_reconstruction(False)


def _overlapping(database: Path, names: list[str]) -> set[str]:
    """The photos with MIN_LINK_MATCHES or more verified matches with any of `names`."""
    import pycolmap

    with pycolmap.Database.open(database) as db:
        by_id = {image.image_id: image.name for image in db.read_all_images()}
        wanted = {i for i, n in by_id.items() if n in set(names)}
        pair_ids, geometries = db.read_two_view_geometries()
    found = set()
    for pair_id, geometry in zip(pair_ids, geometries, strict=True):
        a, b = pycolmap.pair_id_to_image_pair(pair_id)
        if len(geometry.inlier_matches) >= MIN_LINK_MATCHES and (a in wanted or b in wanted):
            found.update((by_id[a], by_id[b]))
    return found - set(names)


def _placed_names(model: Any, inputs: list[_Input]) -> set[str]:
    if model is None:
        return set()
    by_colmap = {i.colmap_name: i.photo.name for i in inputs}
    return {by_colmap[model.image(i).name] for i in model.reg_image_ids()}


def _reasons(database: Path, inputs: list[_Input], placed: set[str], models: list[Any]
             ) -> dict[str, str | None]:
    """Why each photo was not placed, in words a shop owner can act on."""
    import pycolmap

    linked: set[int] = set()
    with pycolmap.Database.open(database) as db:
        ids = {im.name: im.image_id for im in db.read_all_images()}
        keypoints = {i: db.num_keypoints_for_image(i) for i in ids.values()}
        pair_ids, geometries = db.read_two_view_geometries()
        for pair_id, geometry in zip(pair_ids, geometries, strict=True):
            if len(geometry.inlier_matches) >= MIN_LINK_MATCHES:
                linked.update(pycolmap.pair_id_to_image_pair(pair_id))
    elsewhere = {model.image(i).name: model.num_reg_images() for model in models
                 for i in model.reg_image_ids()}
    reasons: dict[str, str | None] = {}
    for item in inputs:
        image_id = ids.get(item.colmap_name)
        if item.photo.name in placed:
            reasons[item.photo.name] = None
        elif image_id is None or keypoints.get(image_id, 0) < FEW_KEYPOINTS:
            reasons[item.photo.name] = "too few details: plain, dark or blurry"
        elif image_id not in linked:
            reasons[item.photo.name] = "overlaps with no other photo"
        elif item.colmap_name in elsewhere:
            reasons[item.photo.name] = (f"belongs to a separate group of "
                                        f"{elsewhere[item.colmap_name]} photos that does not "
                                        "connect to the rest")
        else:
            reasons[item.photo.name] = "too little overlap with the placed photos"
    return reasons


def camera_intrinsics(camera: Any) -> Intrinsics:
    """A COLMAP camera as nerfstudio's OPENCV model."""
    p = [float(v) for v in camera.params]
    model = camera.model_name
    w, h = int(camera.width), int(camera.height)
    if model == "SIMPLE_PINHOLE":
        return Intrinsics(w, h, p[0], p[0], p[1], p[2])
    if model == "PINHOLE":
        return Intrinsics(w, h, p[0], p[1], p[2], p[3])
    if model == "SIMPLE_RADIAL":
        return Intrinsics(w, h, p[0], p[0], p[1], p[2], k1=p[3])
    if model == "RADIAL":
        return Intrinsics(w, h, p[0], p[0], p[1], p[2], k1=p[3], k2=p[4])
    if model == "OPENCV":
        return Intrinsics(w, h, *p[:4], k1=p[4], k2=p[5], p1=p[6], p2=p[7])
    raise ValueError(f"camera model {model} has no OPENCV equivalent")


def model_arrays(model: Any) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(image ids, camera-to-world (N,4,4) OpenCV, reliable sparse points (M,3))."""
    ids = sorted(model.reg_image_ids())
    c2w = np.tile(np.eye(4), (len(ids), 1, 1))
    for k, image_id in enumerate(ids):
        c2w[k, :3, :] = model.image(image_id).cam_from_world().inverse().matrix()
    points = [p.xyz for p in model.points3D.values()
              if p.track.length() >= 3 and p.error < 2.0]
    return ids, c2w, np.array(points, float).reshape(-1, 3)


def _write_outputs(ws: Workspace, model: Any, inputs: list[_Input], max_image_size: int
                   ) -> dict[str, list[float]]:
    """colmap/*.bin, dataset/ and model/object.json; returns normalized camera positions."""
    model.write(ws.colmap_dir)
    ids, c2w, points = model_arrays(model)
    # Photos in shooting order: the first placed one fixes the normalized frame's +X side.
    order = {i.colmap_name: n for n, i in enumerate(inputs)}
    ids_c2w = sorted(zip(ids, c2w, strict=True), key=lambda t: order[model.image(t[0]).name])
    ids = [i for i, _ in ids_c2w]
    c2w = np.stack([m for _, m in ids_c2w])

    cameras = [camera_intrinsics(model.camera(model.image(i).camera_id)) for i in ids]
    location = locate_object(c2w, points, cameras)
    to_normalized = location.to_normalized()
    poses = transform_poses(to_normalized, c2w)
    by_colmap = {i.colmap_name: i.photo for i in inputs}
    images_dir = ws.dataset_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    frames, positions = [], {}
    for image_id, pose in zip(ids, poses, strict=True):
        image = model.image(image_id)
        photo = by_colmap[image.name]
        camera = camera_intrinsics(model.camera(image.camera_id))
        size = resize_photo(ws.colmap_dir / "photos" / photo.name, images_dir / photo.name,
                            max_image_size, flatten=False)
        frames.append(Frame(photo.name, pose, camera.resized(*size)))
        positions[photo.name] = [round(float(v), 5) for v in pose[:3, 3]]
    write_transforms(ws.dataset_dir, frames)
    write_json_atomic(ws.object_json, describe_object(location, c2w))
    write_points_ply(ws.dataset_dir / SPARSE_POINTS_NAME, transform_points(to_normalized, points))
    write_points_ply(ws.dataset_dir / PRODUCT_POINTS_NAME,
                     transform_points(to_normalized, location.points))
    shutil.rmtree(ws.colmap_dir / "models", ignore_errors=True)
    return positions


def _camera_list(names: list[str], placed: set[str], positions: dict[str, list[float]],
                 reasons: dict[str, str | None]) -> list[dict[str, Any]]:
    """Each photo, placed or not, with its position around the product (z up)."""
    return [{"name": n, "placed": n in placed, "position": positions.get(n),
             "reason": reasons.get(n)} for n in names]


def _write_summary(ws: Workspace, result: PoseResult, names: list[str], placed: set[str],
                   positions: dict[str, list[float]], reasons: dict[str, str | None]) -> None:
    write_json_atomic(ws.colmap_dir / "summary.json", {
        "total": result.total,
        "placed": result.placed,
        "mean_reprojection_error": result.mean_reprojection_error,
        "matcher": result.matcher,
        "images": _camera_list(names, placed, positions, reasons),
        "timings": result.timings,
    })

