"""The photo-versus-render comparison, without a trained model: the synthetic scene's own
ray caster stands in for the NeRF, so a right camera must score as faithful and a wrong
one as poor. (tests/engine/test_train_render.py runs it through a real model.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.engine.compare import (
    VERDICT_RULES,
    compare_views,
    pick_views,
    score,
    ssim,
    verdict,
)
from pipeline.engine.dataset import OPENCV_TO_OPENGL, Intrinsics
from pipeline.engine.scene import transform_poses
from pipeline.engine.workspace import Workspace
from tests.synthetic_scene import make_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), n_views=8)


@pytest.fixture(scope="module")
def ws(scene, tmp_path_factory) -> Workspace:
    """A posed workspace with masks (the scene's true alpha) at half the photos' size, as
    the train stage leaves them, for 6 of the 8 photos."""
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    scene.write_ground_truth_workspace(ws.root)
    masks = ws.dataset_dir / "masks"
    masks.mkdir(parents=True)
    for name, c2w in list(zip(scene.names, scene.c2w, strict=True))[:6]:
        _, alpha = scene.render_view(c2w, scene.K, scene.width, scene.height)
        mask = Image.fromarray(np.round(alpha * 255).astype(np.uint8))
        mask.resize((scene.width // 2, scene.height // 2), Image.Resampling.BOX).save(
            masks / f"{Path(name).stem}.png")
    return ws


def true_renderer(scene):
    """render(c2w, camera) from the scene itself: what a perfect NeRF would give."""
    to_world = np.linalg.inv(scene.to_normalized())

    def render(c2w_gl: np.ndarray, camera: Intrinsics) -> np.ndarray:
        c2w = transform_poses(to_world, (c2w_gl @ OPENCV_TO_OPENGL)[None])[0]
        rgb, alpha = scene.render_view(c2w, camera.matrix(), camera.width, camera.height)
        return np.round(np.dstack([rgb, alpha]) * 255).astype(np.uint8)

    return render


def test_views_have_masks_and_spread_around_the_product(ws: Workspace) -> None:
    views = pick_views(ws)
    assert len(views) == 3
    assert all(v.mask_path.exists() for v in views)
    azimuths = sorted(np.degrees(np.arctan2(v.frame.c2w[1, 3], v.frame.c2w[0, 3])) % 360
                      for v in views)
    gaps = np.diff([*azimuths, azimuths[0] + 360])
    assert gaps.min() > 60, azimuths  # not bunched on one side
    assert pick_views(ws, count=10) and len(pick_views(ws, count=10)) == 6


def test_a_perfect_render_is_faithful(ws: Workspace, scene) -> None:
    doc = compare_views(ws, pick_views(ws), true_renderer(scene))
    out = ws.frames_dir / "compare"
    assert json.loads((out / "compare.json").read_text()) == doc
    assert doc["verdict"] == "faithful", doc
    assert doc["verdict_text"].startswith("Faithful")
    assert len(doc["views"]) == 3
    for view in doc["views"]:
        assert view["alpha_iou"] > 0.9 and view["psnr"] > 25 and view["ssim"] > 0.9, view
        with Image.open(out / view["render_file"]) as render, \
                Image.open(out / view["photo_file"]) as photo:
            assert render.mode == "RGBA" and photo.mode == "RGB"
            # Both are cropped around the product from a view at the masks' size.
            assert render.size == photo.size == (view["width"], view["height"])
            assert view["width"] < scene.width // 2 and view["height"] < scene.height // 2


def test_a_render_from_the_wrong_place_is_poor(ws: Workspace, scene) -> None:
    perfect = true_renderer(scene)

    def beside(c2w: np.ndarray, camera: Intrinsics) -> np.ndarray:
        moved = c2w.copy()  # the camera half the product's size to its right
        moved[:3, 3] += 0.5 * c2w[:3, 0]
        return perfect(moved, camera)

    doc = compare_views(ws, pick_views(ws), beside)
    assert doc["verdict"] == "poor", doc
    assert doc["mean"]["alpha_iou"] < 0.8


def test_no_masks_means_no_comparison(scene, tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    scene.write_ground_truth_workspace(ws.root)
    assert pick_views(ws) == []
    doc = compare_views(ws, [], lambda c2w, cam: pytest.fail("nothing to render"))
    assert doc["views"] == [] and doc["verdict"] is None and doc["mean"] is None


def test_metrics() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((20, 30, 3))
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image, rng.random((20, 30, 3))) < 0.2
    assert ssim(image[:5, :5], image[:5, :5]) == pytest.approx(1.0)  # smaller than the window

    rgb = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 5:25] = 255
    same = score(rgb, mask, np.dstack([rgb, mask]))
    assert same["alpha_iou"] == 1.0 and same["ssim"] == pytest.approx(1.0)
    assert same["psnr"] == 100.0
    half = mask.copy()
    half[:, 15:] = 0
    assert score(rgb, mask, np.dstack([rgb, half]))["alpha_iou"] == 0.5


def test_verdict_thresholds() -> None:
    faithful, fair = (floor for _, floor in VERDICT_RULES)
    assert verdict(faithful) == "faithful"
    assert verdict({**faithful, "ssim": faithful["ssim"] - 0.01}) == "fair"
    assert verdict(fair) == "fair"
    assert verdict({**fair, "alpha_iou": fair["alpha_iou"] - 0.01}) == "poor"
