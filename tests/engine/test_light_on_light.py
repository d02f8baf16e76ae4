"""A light part on a light backdrop: the cream top of a baseplate on a white sweep.

Only the base's printed rim differs from the sweep by much; the top is a few levels off
white. The masks must keep it (it is product), leave the sweep out, and the frames must
show it. True poses (no COLMAP: faster), the CPU `test` preset (tiny by design).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.engine.orbit import orbit
from pipeline.engine.product import load_product
from pipeline.engine.trainset import prepare_training_set
from pipeline.engine.workspace import Workspace
from tests.engine.test_train_render import frames_in
from tests.synthetic_scene import make_scene

ROOT = Path(__file__).resolve().parents[2]
LIGHT = ("light",)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), n_views=16, kind="light_top_on_white")


def test_the_light_top_differs_from_the_sweep_by_a_few_levels_only(scene) -> None:
    """The scene is what it claims: nine in ten of the top's pixels are within 30 levels of
    the sweep's in every channel (their mean within 20), so colour barely tells them apart."""
    rgb = np.asarray(Image.open(scene.images_dir / scene.names[0]).convert("RGB")).astype(int)
    top = scene.shows(LIGHT, scene.c2w[0], scene.K, scene.width, scene.height)
    sweep = rgb[0, 0]
    assert top.sum() > 500
    assert np.percentile(np.abs(rgb[top] - sweep).max(axis=1), 90) <= 30
    assert np.abs(rgb[top].mean(axis=0) - sweep).max() <= 20


def test_masks_keep_the_light_top_and_leave_the_sweep(scene, tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    scene.write_ground_truth_workspace(tmp_path)
    product = load_product(ws)
    prepare_training_set(ws, product.search_box, image_size=320, max_photos=None,
                         core=product.points_box)
    kept, stray = [], []
    for i, name in enumerate(scene.names):
        mask = np.asarray(Image.open(tmp_path / "dataset" / "masks" / name)) > 127
        top = scene.shows(LIGHT, scene.c2w[i], scene.K, scene.width, scene.height)
        kept.append((mask & top).sum() / top.sum())
        stray.append((mask & (scene.alpha[i] == 0)).sum() / (scene.alpha[i] > 0.5).sum())
    # Measured: kept 0.999-1.0 in every view (GrabCut alone kept 0.0-0.34: the top read
    # as sweep); no pixel of pure sweep taken.
    assert min(kept) > 0.95, np.round(kept, 3)
    assert max(stray) < 0.02, np.round(stray, 3)


def test_frames_show_the_light_top(scene, tmp_path: Path) -> None:
    """Trained on the photos, the spin's frames cover the cream top where it is seen."""
    scene.write_ground_truth_workspace(tmp_path)
    env = dict(os.environ, NERF_DEVICE="cpu")
    for args in (("train", "--preset", "test"),
                 ("render", "--frames", "4", "--size", "64")):
        done = subprocess.run([sys.executable, "-m", "pipeline.engine", args[0], "--workspace",
                               str(tmp_path), *args[1:]], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "frames" / "manifest.json").read_text())
    focal = manifest["focal_px"]
    cx, cy = manifest["principal_point_px"]
    k = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]])
    product = load_product(Workspace(tmp_path))
    path = orbit(product.elevation_deg, manifest["camera_distance"], 4,
                 center=np.array(manifest["orbit_center"]))
    images = frames_in(tmp_path)
    covered = []
    for frame in path:
        rgba = images[f"frame_{frame.index:04d}.png"]
        top = scene.shows(LIGHT, scene.from_normalized(frame.c2w), k, 64, 64)
        covered.append((top & (rgba[..., 3] > 127)).sum() / max(1, top.sum()))
    assert min(covered) > 0.8, np.round(covered, 3)
