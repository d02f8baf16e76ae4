"""The colmap stage on a synthetic capture with known cameras, on real photos, and on the
bad input shop owners send. The command line runs as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pycolmap
import pytest

from pipeline.engine import colmap
from pipeline.engine.colmap import estimate_poses, model_arrays
from pipeline.engine.dataset import read_transforms
from pipeline.engine.pairs import (
    SIMILAR_PER_PHOTO,
    capture_pairs,
    pair_list,
    shared_features,
)
from pipeline.engine.progress import Progress, read_progress
from pipeline.engine.workspace import Workspace
from tests.synthetic_scene import SyntheticScene, make_scene, umeyama

ROOT = Path(__file__).resolve().parents[2]
SKULL = Path(os.environ.get("SKULL_PHOTOS", ROOT.parent / "shared" / "datasets" / "skull"))


@pytest.fixture
def skull() -> Path:
    """The 29 real skull photos that sit beside the checkout (../shared/datasets/skull),
    or where SKULL_PHOTOS says. A clone without them skips these tests and says why."""
    if not (SKULL / "17.jpg").is_file():
        pytest.skip(f"the skull photos are not at {SKULL}: set SKULL_PHOTOS to their folder")
    return SKULL


def run_colmap(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.engine", "colmap", "--workspace", str(ws), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def rotation_errors_deg(r_true: np.ndarray, r_est: np.ndarray) -> np.ndarray:
    rel = np.einsum("nji,njk->nik", r_true, r_est)
    cos = (np.trace(rel, axis1=1, axis2=2) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SyntheticScene:
    scene = make_scene(tmp_path_factory.mktemp("scene"))
    (scene.images_dir / "notes.txt").write_text("shot list")  # not a photo: ignored
    return scene


@pytest.fixture(scope="module")
def synthetic_run(scene: SyntheticScene, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    ws = tmp_path_factory.mktemp("ws")
    return ws, run_colmap(ws, "--images", str(scene.images_dir))


def test_places_the_synthetic_capture_where_it_was_taken(synthetic_run, scene):
    ws, proc = synthetic_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = {f.name: f for f in read_transforms(ws / "dataset" / "transforms.json")}
    assert len(frames) >= 0.9 * len(scene.names)

    index = [scene.names.index(name) for name in frames]
    est = np.stack([f.c2w for f in frames.values()])
    true = scene.c2w[index]
    s, rot, t = umeyama(est[:, :3, 3], true[:, :3, 3])
    errors = rotation_errors_deg(true[:, :3, :3], rot @ est[:, :3, :3])
    assert np.median(errors) < 2.0, errors
    # The normalized frame's origin is the product's centre, its unit the product radius.
    assert np.linalg.norm(t - scene.object_center) < 0.05 * scene.orbit_radius
    assert s == pytest.approx(scene.object_radius, rel=0.15)
    # Up is +Z: the true up, rotated into the normalized frame, is nearly +Z.
    assert (rot.T @ scene.up)[2] > np.cos(np.radians(3))


def test_writes_every_contracted_file(synthetic_run, scene):
    ws, proc = synthetic_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Ignored notes.txt: not a JPEG or PNG photo." in proc.stderr
    # Into a log file progress goes as plain lines, never a bar's carriage-return redraws.
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert any(line.startswith("colmap: ") and "%" in line for line in lines)
    assert max(len(line) for line in lines) < 300
    assert last_line(proc.stdout).startswith(f"Placed {len(scene.names)} of "
                                             f"{len(scene.names)} photos")

    with zipfile.ZipFile(ws / "images.zip") as zf:
        assert sorted(zf.namelist()) == scene.names
    for name in ("cameras.bin", "images.bin", "points3D.bin", "database.db"):
        assert (ws / "colmap" / name).is_file()

    summary = json.loads((ws / "colmap" / "summary.json").read_text())
    assert summary["total"] == summary["placed"] == len(scene.names)
    assert summary["matcher"] == "auto"
    assert 0 < summary["mean_reprojection_error"] < 1.5
    assert set(summary["timings"]) >= {"extract", "match", "map"}
    radii = [np.linalg.norm(i["position"][:2]) for i in summary["images"]]
    assert all(2.0 < r < 5.0 for r in radii)  # orbit radius 3.3 product radii
    assert all(i["reason"] is None for i in summary["images"])

    obj = json.loads((ws / "model" / "object.json").read_text())
    assert obj["center"] == [0.0, 0.0, 0.0] and obj["up"] == [0.0, 0.0, 1.0]
    assert obj["radius"] == 1.0
    assert np.linalg.norm(obj["bbox_max"]) <= 1.0 + 1e-6
    assert np.allclose(obj["bbox_min"], -np.array(obj["bbox_max"]))
    assert 10 < obj["elevation_deg"]["mean"] < 35
    assert obj["camera_distance"]["mean"] == pytest.approx(
        scene.orbit_radius / scene.object_radius, rel=0.1)
    assert np.array(obj["colmap_to_world"]).shape == (4, 4)

    state = read_progress(ws / "progress.json")
    assert state["status"] == "succeeded" and state["stage"] == "colmap"
    assert state["metrics"]["placed"] == state["metrics"]["total"] == len(scene.names)
    assert state["metrics"]["unplaced"] == []
    assert state["metrics"]["mean_reprojection_error"] == summary["mean_reprojection_error"]


def test_dataset_loads_with_nerfstudios_own_parser(synthetic_run):
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    ws, proc = synthetic_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = NerfstudioDataParserConfig(
        data=ws / "dataset", orientation_method="none", center_method="none",
        auto_scale_poses=False, train_split_fraction=1.0, downscale_factor=1)
    outputs = config.setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 24
    assert all(Path(f).is_file() for f in outputs.image_filenames)
    cameras = outputs.cameras
    assert int(cameras.width[0]) == 320 and int(cameras.height[0]) == 240
    # nerfstudio keeps our frame as it is: the cameras orbit the origin around +Z.
    positions = cameras.camera_to_worlds[:, :3, 3].numpy()
    assert np.abs(positions.mean(axis=0)[:2]).max() < 0.5
    look = -cameras.camera_to_worlds[:, :3, 2].numpy()  # OpenGL cameras look along -z
    towards_centre = -positions / np.linalg.norm(positions, axis=1, keepdims=True)
    assert np.median(np.sum(look * towards_centre, axis=1)) > np.cos(np.radians(5))


def test_reruns_from_images_zip_with_the_sequential_matcher(synthetic_run, scene, tmp_path):
    """The worker's call: photos only in WS/images.zip; and the large-set matcher."""
    ws, proc = synthetic_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    rerun = Workspace(tmp_path / "ws").ensure()
    shutil.copy(ws / "images.zip", rerun.images_zip)
    result = estimate_poses(rerun, matcher="sequential",
                            progress=Progress(rerun.progress_json, "colmap", show_bar=False))
    assert result.matcher == "sequential"
    assert result.placed == len(scene.names)
    assert rerun.transforms_json.is_file()


def test_sequential_pairs_close_the_loop_and_grow_linearly():
    pairs = pair_list(200, "sequential")
    assert len(pairs) == len(set(pairs))
    assert all(a < b for a, b in pairs)
    assert (0, 1) in pairs and (0, 199) in pairs  # the last photo meets the first
    # Opposite sides of the loop meet through the skeleton.
    assert max(min(b - a, 200 - (b - a)) for a, b in pairs) >= 95
    assert len(pair_list(400, "sequential")) < 2.1 * len(pairs)  # not 4× as exhaustive
    assert len(pair_list(20, "exhaustive")) == 190



def test_capture_pairs_are_each_photos_neighbours_and_look_alikes(synthetic_run, scene):
    """The auto pairs of the synthetic capture (two rings of 12): every photo meets the
    ones taken next to it and those it shares the most features with, and those are the
    photos really taken beside it, not all the others."""
    ws, proc = synthetic_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = scene.names
    pairs = capture_pairs(ws / "colmap" / "database.db", names)
    count = len(names)
    assert len(pairs) == len(set(pairs)) and all(a < b for a, b in pairs)
    assert len(pairs) < count * (count - 1) / 2
    assert (0, 1) in pairs and (0, count - 1) in pairs  # the loop closes
    assert all(sum(i in p for p in pairs) >= SIMILAR_PER_PHOTO for i in range(count))

    shared = shared_features(ws / "colmap" / "database.db", names)
    np.fill_diagonal(shared, -1)
    heading = np.degrees(np.arctan2(*(scene.c2w[:, :2, 3] - scene.object_center[:2]).T))
    for i in range(count):
        nearest = np.argsort(-shared[i], kind="stable")[:3]
        apart = np.abs((heading[nearest] - heading[i] + 180) % 360 - 180)
        assert apart.max() <= 45, (names[i], [names[j] for j in nearest], apart)


@pytest.fixture(scope="module")
def portrait_scene(tmp_path_factory: pytest.TempPathFactory) -> SyntheticScene:
    """Phone-like portrait photos, large enough for one pass to place them all."""
    return make_scene(tmp_path_factory.mktemp("portrait"), n_views=20, width=540, height=960)


def test_a_photo_the_pairs_miss_is_placed_by_extending_the_model(portrait_scene, tmp_path,
                                                                 monkeypatch):
    """View 5 is matched with nobody at first: the model of the other 19 is extended with
    it. Features are extracted once per photo, view 5 is matched with every photo (then
    the photos it overlaps with each other), no pair twice, and the second mapping starts
    from the first model."""
    names = portrait_scene.names
    calls: dict[str, list] = {"extract": [], "match": [], "map": []}
    for step in calls:
        real = getattr(colmap, f"_{step}")

        def spy(*args, _real=real, _step=step, **kwargs):
            out = _real(*args, **kwargs)
            calls[_step].append((args, kwargs, out))
            return out

        monkeypatch.setattr(colmap, f"_{step}", spy)
    chosen = colmap.capture_pairs
    monkeypatch.setattr(colmap, "capture_pairs", lambda database, photos: [
        (a, b) for a, b in chosen(database, photos) if 5 not in (a, b)])
    lines: list[str] = []

    class Recording(Progress):
        def log(self, message: str) -> None:
            lines.append(message)
            super().log(message)

    ws = Workspace(tmp_path).ensure()
    result = estimate_poses(ws, images=portrait_scene.images_dir,
                            progress=Recording(ws.progress_json, "colmap", show_bar=False))

    assert result.placed == 20 and result.unplaced == []
    assert "1 of 20 photos not placed yet: matching them with every other photo" in lines
    assert "extend" in result.timings
    ((args, _, _),) = calls["extract"]
    assert sorted(args[2]) == sorted(names)  # one extraction, of every photo
    first, again, *around = calls["match"]
    assert all(5 not in pair for pair in first[0][3])
    assert sorted(again[0][3]) == [tuple(sorted((5, k))) for k in range(20) if k != 5]
    matched = [pair for call in calls["match"] for pair in call[0][3]]
    assert len(matched) == len(set(matched))  # no pair matched twice
    (_, scratch, models), (_, extension, _) = calls["map"]
    assert scratch.get("start_from") is None
    start = extension["start_from"]
    assert start is max(models, key=lambda m: m.num_reg_images())
    assert start.num_reg_images() == 19
    # the cameras of the first model stay where they were: it was extended, not redone
    placed = pycolmap.Reconstruction(ws.colmap_dir)
    _, before, _ = model_arrays(start)
    ids, after, _ = model_arrays(placed)
    kept = [k for k, i in enumerate(ids) if placed.image(i).name != names[5]]
    _, rot, _ = umeyama(after[kept, :3, 3], before[:, :3, 3])
    assert np.median(rotation_errors_deg(before[:, :3, :3], rot @ after[kept, :3, :3])) < 0.1


def test_colmap_downscales_for_features_and_the_dataset_cameras_follow(portrait_scene,
                                                                      tmp_path):
    """Photos over max_image_size reach COLMAP whole: it downscales them for SIFT and keeps
    the cameras at full size; the dataset's photos and intrinsics are scaled down together."""
    from PIL import Image

    ws = Workspace(tmp_path).ensure()
    result = estimate_poses(ws, images=portrait_scene.images_dir, max_image_size=640)
    assert result.placed == 20
    (camera,) = pycolmap.Reconstruction(ws.colmap_dir).cameras.values()
    assert (camera.width, camera.height) == (540, 960)
    frames = read_transforms(ws.transforms_json)
    for frame in frames:
        assert (frame.camera.width, frame.camera.height) == (360, 640)
        assert frame.camera.fx == pytest.approx(camera.params[0] * 2 / 3, rel=1e-6)
        with Image.open(ws.dataset_dir / "images" / frame.name) as img:
            assert img.size == (360, 640)
    index = [portrait_scene.names.index(f.name) for f in frames]
    est = np.stack([f.c2w for f in frames])
    true = portrait_scene.c2w[index]
    _, rot, _ = umeyama(est[:, :3, 3], true[:, :3, 3])
    errors = rotation_errors_deg(true[:, :3, :3], rot @ est[:, :3, :3])
    assert np.median(errors) < 0.5, errors


@pytest.mark.slow
def test_places_every_skull_photo(tmp_path, skull):
    proc = run_colmap(tmp_path, "--images", str(SKULL))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "colmap" / "summary.json").read_text())
    assert summary["placed"] == summary["total"] == 29
    assert summary["mean_reprojection_error"] < 1.0
    obj = json.loads((tmp_path / "model" / "object.json").read_text())
    assert 1.5 < obj["camera_distance"]["mean"] < 20


# Bad input: each fails with its own one-line reason, exit code 3 and a failed progress.json.


def assert_fails(ws: Path, proc: subprocess.CompletedProcess[str], *phrases: str) -> str:
    assert proc.returncode == 3, proc.stderr[-2000:]
    reason = last_line(proc.stderr)
    assert reason.startswith("error: ")
    for phrase in phrases:
        assert phrase in reason
    state = read_progress(ws / "progress.json")
    assert state["status"] == "failed" and state["stage"] == "colmap"
    assert state["error"] == reason.removeprefix("error: ")
    return reason


def test_empty_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    proc = run_colmap(tmp_path / "ws", "--images", str(tmp_path / "photos"))
    assert_fails(tmp_path / "ws", proc, "No photos were found", "20 or more")


def test_no_images_zip_in_the_workspace(tmp_path):
    proc = run_colmap(tmp_path / "ws")
    assert_fails(tmp_path / "ws", proc, "no images.zip", "upload the photos")


def test_two_photos(tmp_path, scene):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in scene.names[:2]:
        shutil.copy(scene.images_dir / name, photos / name)
    proc = run_colmap(tmp_path / "ws", "--images", str(photos))
    assert_fails(tmp_path / "ws", proc, "Only 2 different photos", "at least 3")


def test_only_files_that_are_not_photos(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "readme.txt").write_text("hello")
    (photos / "clip.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  ")
    proc = run_colmap(tmp_path / "ws", "--images", str(photos))
    assert_fails(tmp_path / "ws", proc, "None of the 2 uploaded files is a photo")
    assert "Ignored clip.mov" in proc.stderr


def test_truncated_jpeg(tmp_path, skull):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("17.jpg", "18.jpg", "22.jpg"):
        shutil.copy(SKULL / name, photos / name)
    data = (SKULL / "23.jpg").read_bytes()
    (photos / "23.jpg").write_bytes(data[: len(data) // 2])
    proc = run_colmap(tmp_path / "ws", "--images", str(photos))
    assert_fails(tmp_path / "ws", proc, "Photo 23.jpg is damaged or incomplete",
                 "upload it again")


def test_thirty_copies_of_one_photo(tmp_path, skull):
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(30):
        shutil.copy(SKULL / "17.jpg", photos / f"IMG_{n:04d}.jpg")
    proc = run_colmap(tmp_path / "ws", "--images", str(photos))
    assert_fails(tmp_path / "ws", proc, "Only 1 different photo",
                 "29 identical copies")


def test_photos_of_unrelated_scenes(tmp_path, skull):
    """Three far-apart skull shots and three scenes of their own: nothing overlaps."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("17.jpg", "33.jpg", "46.jpg"):
        shutil.copy(SKULL / name, photos / name)
    for seed in (1, 2, 3):
        other = make_scene(tmp_path / f"scene{seed}", n_views=2, seed=seed)
        shutil.copy(other.images_dir / other.names[0], photos / f"other_{seed}.png")
    ws = tmp_path / "ws"
    proc = run_colmap(ws, "--images", str(photos))
    assert_fails(ws, proc, "photos could be placed", "overlap", "even light", "reflections")
    summary = json.loads((ws / "colmap" / "summary.json").read_text())
    assert summary["total"] == 6 and summary["placed"] < 3
    unplaced = [i for i in summary["images"] if not i["placed"]]
    assert unplaced and all(i["reason"] for i in unplaced)
    assert not (ws / "dataset" / "transforms.json").exists()
