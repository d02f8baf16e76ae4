"""The colmap stage: photos in, camera poses, a nerfstudio dataset and the product out.

    photos ─ normalize ─▶ WS/images.zip, colmap/images/ (copies for features, removed after)
           ─ extract ─ match ─ map (pycolmap) ─▶ colmap/{cameras,images,points3D}.bin
             (and, only for photos left unplaced: extract ─ match ─ map again, robustly)
           ─ locate the product, normalize ─▶ dataset/transforms.json, dataset/images/,
                                              dataset/{sparse,product}_points.ply,
                                              model/object.json, colmap/summary.json

pycolmap's defaults are tuned for large, well-textured captures; product photos are few,
often dark or glossy and far apart. Poses come in two passes (see bench/poses.py). The
first is quick: the defaults' SIFT features and pairs, but geometric verification with a
capped RANSAC (pairs that do not overlap otherwise run it to its full length, which is
most of the defaults' time) and, above EXHAUSTIVE_LIMIT photos, only neighbours in
shooting order plus a skeleton of spread-out photos. Photos it leaves unplaced escalate
to the slow robust settings (affine-adapted SIFT, every pair with them, RANSAC to its full
length) and the mapping starts again; when that still leaves some, or the quick pass
left many (a hard capture, like the skull), every photo takes the robust pass.
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
from .pose_check import check_poses
from .progress import Progress, write_json_atomic
from .scene import describe_object, locate_object, transform_points, transform_poses
from .workspace import Workspace

log = logging.getLogger(__name__)

EXHAUSTIVE_LIMIT = 60  # up to this many photos every pair is matched
# The quick first pass matches every pair up to EXHAUSTIVE_LIMIT photos, as the robust one
# does (sparser pairs cost accuracy: 0.196° against 0.096° median rotation error on the
# 50-photo bench); beyond it, each photo with its FAST_OVERLAP next ones and every pair of
# FAST_SKELETON spread-out photos.
FAST_EXHAUSTIVE_LIMIT = EXHAUSTIVE_LIMIT
FAST_OVERLAP = 6
FAST_SKELETON = 12
# Geometric verification dominates matching on a CPU: pairs that do not overlap run RANSAC
# to its cap. The first pass stops sooner; overlapping pairs converge long before.
FAST_RANSAC_TRIALS = 1000
# When the quick pass leaves more than this share of the photos unplaced, the capture is a
# hard one: every photo takes the robust pass at once, since quick and robust features
# match each other poorly.
ESCALATE_ALL_SHARE = 0.25
SEQUENTIAL_OVERLAP = 12  # neighbours in shooting order matched with each photo
LOOP_SKELETON = 40  # photos spread over the set that are all matched with each other
MIN_PLACED = 3
FEW_KEYPOINTS = 300

RETAKE_ADVICE = ("Retake them walking all around the product with a lot of overlap between "
                 "shots (about 10° apart), in even light, against a background that is not "
                 "plain, and avoid reflections.")

# Share of the stage each step takes, for the progress bar.
_STEPS = {"read": (0.0, 0.08), "extract": (0.08, 0.45), "match": (0.45, 0.75),
          "map": (0.75, 0.85), "escalate": (0.85, 0.95), "write": (0.95, 1.0)}


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
    _extract(database, ws.colmap_dir / "images", colmap_names, report,
             max_image_size=max_image_size, import_first=True)
    timings["extract"] = time.monotonic() - started

    used = "exhaustive" if (matcher == "auto" and total <= EXHAUSTIVE_LIMIT) else matcher
    used = "sequential" if used == "auto" else used
    started = time.monotonic()
    _match(database, ws.colmap_dir, colmap_names, first_pass_pairs(total, used), report)
    timings["match"] = time.monotonic() - started

    started = time.monotonic()
    models = _map(database, ws.colmap_dir, total, report)
    timings["map"] = time.monotonic() - started

    # Only the photos the quick pass leaves out pay for the slow robust settings. Quick
    # and robust features match each other poorly, so when that does not place them all
    # (or the quick pass left many), every photo takes the robust pass, from scratch.
    robust: set[str] = set()
    started = time.monotonic()
    left_out = _unplaced_names(models, colmap_names)
    if left_out and len(left_out) <= ESCALATE_ALL_SHARE * total:
        models = _escalate(database, ws.colmap_dir, colmap_names, left_out, used, report,
                           (0.0, 0.4), max_image_size=max_image_size)
        robust.update(left_out)
    if _unplaced_names(models, colmap_names):
        models = _escalate(database, ws.colmap_dir, colmap_names, colmap_names, used, report,
                           (0.4 if robust else 0.0, 1.0), max_image_size=max_image_size)
        robust.update(colmap_names)
    if robust:
        timings["escalate"] = time.monotonic() - started

    _step(report, "write", 0.0, "Writing the dataset")
    started = time.monotonic()
    best = max(models, key=lambda r: r.num_reg_images(), default=None)
    # A wrong camera must never reach training: check every pose before anything is written.
    by_colmap = {i.colmap_name: i.photo.name for i in inputs}
    verdicts = (check_poses(best, database, [i.colmap_name for i in inputs], by_colmap.get)
                if best else [])
    placed_names = _placed_names(best, inputs)
    reasons = _reasons(database, inputs, placed_names, models)
    for verdict in verdicts:
        if not verdict.replaced:
            reasons[by_colmap[verdict.name]] = verdict.reason
    error = float(best.compute_mean_reprojection_error()) if best is not None else 0.0
    unplaced = [n for n in names if n not in placed_names]
    result = PoseResult(total, len(placed_names), round(error, 3), unplaced, used, timings)
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


def _extraction_options(max_image_size: int, robust: bool = False) -> Any:
    import pycolmap

    options = pycolmap.FeatureExtractionOptions()
    options.max_image_size = max_image_size
    if robust:
        # Affine-adapted SIFT keeps matching across the wide angle between product shots;
        # on the skull set it is the difference between 10 and 29 photos placed.
        options.sift.estimate_affine_shape = True
        options.sift.max_num_features = 8192
    # Otherwise SIFT as pycolmap's defaults extract it (upsampled first octave, 8192
    # features): skipping the upsampling or halving the features cost rotation accuracy
    # on the bench, and the time goes to verification, not here.
    return options


def _extract(database: Path, image_dir: Path, names: list[str], report: Progress, *,
             max_image_size: int, import_first: bool = False, robust: bool = False,
             step: str = "extract", span: tuple[float, float] = (0.0, 1.0)) -> None:
    import pycolmap

    lo, hi = span
    _step(report, step, lo, "Finding details in the photos")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    mode = pycolmap.CameraMode.PER_FOLDER if "/" in names[0] else pycolmap.CameraMode.SINGLE
    if import_first:
        # Import every photo first so the cameras are shared, then extract in chunks for
        # the progress bar: extraction fills in images already in the database.
        with pycolmap.Database.open(database):
            pass  # creates the empty database
        pycolmap.import_images(database, image_dir, camera_mode=mode, image_names=names,
                               options=reader)
    options = _extraction_options(max_image_size, robust)
    chunk = max(1, math.ceil(len(names) / 10))
    for start in range(0, len(names), chunk):
        pycolmap.extract_features(database, image_dir, image_names=names[start:start + chunk],
                                  camera_mode=mode, reader_options=reader,
                                  extraction_options=options)
        done = min(len(names), start + chunk)
        _step(report, step, lo + (hi - lo) * done / len(names),
              f"Finding details in the photos ({done}/{len(names)})")


def pair_list(count: int, matcher: str, overlap: int = SEQUENTIAL_OVERLAP,
              skeleton: int = LOOP_SKELETON) -> list[tuple[int, int]]:
    """Which photos (by index in shooting order) to match with which.

    exhaustive: every pair. sequential: each photo with its `overlap` next neighbours,
    wrapping around (a capture is a loop), plus every pair among a skeleton of `skeleton`
    photos spread over the whole set, which closes loops without a vocabulary tree.
    """
    if matcher == "exhaustive" or count <= overlap + 1:
        return list(itertools.combinations(range(count), 2))
    pairs = set()
    for i in range(count):
        for step in range(1, overlap + 1):
            pairs.add(tuple(sorted((i, (i + step) % count))))
    spread = np.unique(np.linspace(0, count - 1, min(count, skeleton)).round()).astype(int)
    pairs.update(itertools.combinations(spread.tolist(), 2))
    return sorted(pairs)


def first_pass_pairs(count: int, matcher: str) -> list[tuple[int, int]]:
    """The quick pass's pairs: `matcher`'s on a small capture, else a sparser loop.

    A photo left unplaced by them is matched again with the robust pass's full pairs.
    """
    if count <= FAST_EXHAUSTIVE_LIMIT:
        return pair_list(count, matcher)
    return pair_list(count, "sequential", overlap=FAST_OVERLAP, skeleton=FAST_SKELETON)


def _match(database: Path, colmap_dir: Path, names: list[str], pairs: list[tuple[int, int]],
           report: Progress, *, robust: bool = False, step: str = "match",
           span: tuple[float, float] = (0.0, 1.0)) -> None:
    import pycolmap

    lo, hi = span
    _step(report, step, lo, "Matching the photos")
    matching = pycolmap.FeatureMatchingOptions()
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = 0
    if not robust:
        verification.ransac.max_num_trials = FAST_RANSAC_TRIALS
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
         step: str = "map", span: tuple[float, float] = (0.0, 1.0)) -> list[Any]:
    import pycolmap

    lo, hi = span
    _step(report, step, lo, "Placing the photos in 3D")
    registered = 0

    def on_next_image() -> None:
        nonlocal registered
        registered += 1
        _step(report, step, lo + (hi - lo) * min(registered / total, 1.0),
              f"Placing the photos in 3D ({min(registered, total)}/{total})")

    out = colmap_dir / "models"
    shutil.rmtree(out, ignore_errors=True)  # a second mapping must not mix with the first
    out.mkdir(parents=True, exist_ok=True)
    models = pycolmap.incremental_mapping(database, colmap_dir / "images", out,
                                          options=_mapping_options(),
                                          next_image_callback=on_next_image)
    return list(models.values())


def _unplaced_names(models: list[Any], names: list[str]) -> list[str]:
    """Photos (by colmap name) outside the largest model, in shooting order."""
    best = max(models, key=lambda r: r.num_reg_images(), default=None)
    placed = set() if best is None else {best.image(i).name for i in best.reg_image_ids()}
    return [n for n in names if n not in placed]


def _escalate(database: Path, colmap_dir: Path, names: list[str], left_out: list[str],
              matcher: str, report: Progress, span: tuple[float, float], *,
              max_image_size: int) -> list[Any]:
    """Robust features and pairs for the photos in `left_out` only, then maps again."""
    lo, hi = span

    def part(a: float, b: float) -> tuple[float, float]:
        return lo + (hi - lo) * a, lo + (hi - lo) * b

    _step(report, "escalate", lo, f"Looking harder at {len(left_out)} photos not placed")
    report.log(f"{len(left_out)} of {len(names)} photos not placed yet: trying them with "
               "the robust settings")
    _forget_features(database, left_out)
    _extract(database, colmap_dir / "images", left_out, report,
             max_image_size=max_image_size, robust=True,
             step="escalate", span=part(0.0, 0.5))
    again = set(left_out)
    pairs = [(a, b) for a, b in pair_list(len(names), matcher)
             if names[a] in again or names[b] in again]
    _match(database, colmap_dir, names, pairs, report, robust=True, step="escalate",
           span=part(0.5, 0.85))
    # From scratch: a model kept from the first pass would hold the replaced features.
    return _map(database, colmap_dir, len(names), report, step="escalate",
                span=part(0.85, 1.0))


def _forget_features(database: Path, names: list[str]) -> None:
    """Deletes the features and matches of these photos, so they can be extracted again.

    pycolmap's Database can replace keypoints but not delete them, so this goes through
    SQLite: the tables are COLMAP's documented schema.
    """
    import sqlite3
    from contextlib import closing

    import pycolmap

    with closing(sqlite3.connect(database)) as db, db:
        rows = dict(db.execute("SELECT name, image_id FROM images").fetchall())
        ids = [rows[n] for n in names]
        pairs = {pycolmap.image_pair_to_pair_id(a, b) for a in ids for b in rows.values()
                 if a != b}
        for table in ("keypoints", "descriptors"):
            db.executemany(f"DELETE FROM {table} WHERE image_id = ?", [(i,) for i in ids])
        for table in ("matches", "two_view_geometries"):
            db.executemany(f"DELETE FROM {table} WHERE pair_id = ?", [(p,) for p in pairs])


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
            if len(geometry.inlier_matches) >= 15:
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

