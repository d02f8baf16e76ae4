"""The whole product and only right cameras, on synthetic captures that broke both before:
a product on its own wide flat base (on a plain sweep, and on a textured table), and a
product that looks the same front and back, with one camera put mirrored across it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest

from pipeline.engine import colmap, pose_check
from pipeline.engine.colmap import estimate_poses
from pipeline.engine.masks import ProductBox
from pipeline.engine.product import load_product, save_product_box
from pipeline.engine.progress import Progress
from pipeline.engine.trainset import prepare_training_set, sparse_product_points
from pipeline.engine.workspace import Workspace
from tests.engine.test_colmap import rotation_errors_deg
from tests.synthetic_scene import SyntheticScene, make_scene, umeyama

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def run_poses(scene: SyntheticScene, root: Path) -> Workspace:
    ws = Workspace(root).ensure()
    estimate_poses(ws, images=scene.images_dir,
                   progress=Progress(ws.progress_json, "colmap", show_bar=False))
    return ws


def placed_poses(ws: Workspace, scene: SyntheticScene) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, estimated c2w in the normalized frame, true c2w in the world), OpenCV."""
    doc = json.loads(ws.transforms_json.read_text())
    index = {n: k for k, n in enumerate(scene.names)}
    names = [Path(f["file_path"]).name for f in doc["frames"]]
    est = np.array([np.array(f["transform_matrix"]) @ OPENGL_TO_OPENCV for f in doc["frames"]])
    return names, est, scene.c2w[[index[n] for n in names]]


def box_in_world(box: ProductBox, ws: Workspace, scene: SyntheticScene
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A box of the normalized frame, carried into the scene's world by the cameras."""
    corners = np.array([[x, y, z] for x in (box.lo[0], box.hi[0]) for y in (box.lo[1], box.hi[1])
                        for z in (box.lo[2], box.hi[2])])
    world = in_world(corners, ws, scene)
    return world.min(axis=0), world.max(axis=0)


def in_world(points: np.ndarray, ws: Workspace, scene: SyntheticScene) -> np.ndarray:
    """Points of the normalized frame, carried into the scene's world by the cameras."""
    _, est, true = placed_poses(ws, scene)
    s, r, t = umeyama(est[:, :3, 3], true[:, :3, 3])
    return s * points @ r.T + t


@pytest.mark.parametrize("kind", [
    "wide_base",
    "wide_base_on_table",
])
def test_a_wide_flat_base_is_part_of_the_product(kind, tmp_path):
    """The baseplate is product whether it stands on a plain sweep (where its plane is the
    only one) or on a textured table (which is cut away just above its own surface)."""
    scene = make_scene(tmp_path / "scene", n_views=20, kind=kind)
    ws = run_poses(scene, tmp_path / "ws")
    product = load_product(ws)
    lo, hi = box_in_world(product.box, ws, scene)
    size = scene.bbox_max - scene.bbox_min
    # The base's footprint (it is the widest part) and its bottom are inside the box...
    assert (lo[:2] <= scene.bbox_min[:2] + 0.08 * size[:2]).all(), (lo, scene.bbox_min)
    assert (hi[:2] >= scene.bbox_max[:2] - 0.08 * size[:2]).all(), (hi, scene.bbox_max)
    assert lo[2] <= scene.bbox_min[2] + 0.03 * size[2], (lo, scene.bbox_min)
    # ...and the table or sweep around it is not (it runs out to the photos' edges, several
    # base widths away). The margin the sparse points leave at the base's edge varies
    # between machines (SIFT's floating point): 15.4 % of the width was measured on one.
    assert (lo[:2] >= scene.bbox_min[:2] - 0.2 * size[:2]).all(), (lo, scene.bbox_min)
    assert (hi[:2] <= scene.bbox_max[:2] + 0.2 * size[:2]).all(), (hi, scene.bbox_max)
    # The base's own points seed the masks, on a table too: they spread over its top, and
    # hardly any of the table's around it is among them (one that links to the base's
    # edge may: a seed is only "probably product" to GrabCut).
    seeds = in_world(sparse_product_points(ws, product.points_box), ws, scene)
    on_base = seeds[seeds[:, 2] < scene.bbox_min[2] + 0.1 * size[2]]
    assert len(on_base) >= 20, len(on_base)
    assert (np.ptp(on_base[:, :2], axis=0) >= 0.6 * size[:2]).all(), np.ptp(on_base, axis=0)
    margin = 0.05 * size[:2]
    outside = ((on_base[:, :2] < scene.bbox_min[:2] - margin)
               | (on_base[:, :2] > scene.bbox_max[:2] + margin)).any(axis=1)
    assert outside.mean() <= 0.05, on_base[outside]
    # The ball's plain crown has few points: the masks look for it above the points' box,
    # and the photos' silhouettes grow the box to it, not to the top of the search.
    _, search_hi = box_in_world(product.search_box, ws, scene)
    assert search_hi[2] >= scene.bbox_max[2], (search_hi, scene.bbox_max)
    masks = prepare_training_set(ws, product.search_box, image_size=160, max_photos=None,
                                 core=product.points_box)
    grown = save_product_box(ws, masks.hull.box)
    assert np.allclose(load_product(ws).box.hi, grown.box.hi)
    assert np.allclose(grown.points_box.hi, product.points_box.hi)
    lo, hi = box_in_world(grown.box, ws, scene)
    assert hi[2] >= scene.bbox_max[2] - 0.04 * size[2], (hi, scene.bbox_max)
    assert hi[2] <= scene.bbox_max[2] + 0.12 * size[2], (hi, scene.bbox_max)
    assert lo[2] <= scene.bbox_min[2] + 0.03 * size[2], (lo, scene.bbox_min)
    assert len(placed_poses(ws, scene)[0]) >= 18
    # The masks hug the silhouettes, the concave corner between body and base included
    # (the silhouettes' hull is fat there, and must not be painted into the masks).
    ious = mask_ious(ws, scene, masks.names)
    hug = min(ious) > MIN_MASK_IOU and np.mean(ious) > MEAN_MASK_IOU
    if kind == "wide_base_on_table" and not hug:
        # Known gap: the box holds the whole base and the base's points seed the masks, but
        # against a textured table GrabCut stops short of the base's edges, where the
        # sparse points end (measured: min 0.84, mean 0.93).
        pytest.xfail(f"masks stop short of the base's edges on a textured table: "
                     f"{np.round(ious, 3)}")
    assert hug, np.round(ious, 3)


MIN_MASK_IOU, MEAN_MASK_IOU = 0.85, 0.94


def mask_ious(ws: Workspace, scene: SyntheticScene, names: list[str]) -> list[float]:
    """IoU of the train stage's masks with the scene's true silhouettes, per photo."""
    from PIL import Image

    ious = []
    for name in names:
        with Image.open(ws.dataset_dir / "masks" / f"{Path(name).stem}.png") as img:
            mask = np.asarray(img) > 127
        alpha = scene.alpha[scene.names.index(name)].astype(np.float32)
        true = np.asarray(Image.fromarray(alpha).resize(mask.shape[::-1],
                                                        Image.Resampling.BOX)) > 0.5
        ious.append(float((mask & true).sum() / max(1, (mask | true).sum())))
    return ious


@pytest.fixture(scope="module")
def symmetric(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticScene, Workspace]:
    """The near-symmetric product, placed by the colmap stage (every camera right)."""
    root = tmp_path_factory.mktemp("symmetric")
    scene = make_scene(root / "scene", n_views=20, kind="symmetric")
    return scene, run_poses(scene, root / "ws")


def move_one_camera(model, scene: SyntheticScene, name: str, turn: np.ndarray) -> None:
    """Moves the photo `name` by the rotation `turn` (world frame) about the product's
    centre, still looking at the product."""
    ids = sorted(model.reg_image_ids())
    index = {n: k for k, n in enumerate(scene.names)}
    centers = np.array([model.image(i).projection_center() for i in ids])
    true = scene.c2w[[index[model.image(i).name] for i in ids]]
    s, r, t = umeyama(centers, true[:, :3, 3])  # model → world
    c2w_world = scene.c2w[index[name]].copy()
    c2w_world[:3, :3] = turn @ c2w_world[:3, :3]
    c2w_world[:3, 3] = scene.object_center + turn @ (c2w_world[:3, 3] - scene.object_center)
    rotation = r.T @ c2w_world[:3, :3]
    center = r.T @ (c2w_world[:3, 3] - t) / s
    cam_from_world = np.hstack([rotation.T, (-rotation.T @ center)[:, None]])
    image = next(model.image(i) for i in ids if model.image(i).name == name)
    image.frame.rig_from_world = pycolmap.Rigid3d(cam_from_world)


def mirror_one_camera(model, scene: SyntheticScene, name: str) -> None:
    """Half a turn around the product's vertical axis: where COLMAP puts a photo of a
    product that looks the same from the other side."""
    move_one_camera(model, scene, name, np.diag([-1.0, -1.0, 1.0]))


def nudge_one_camera(model, scene: SyntheticScene, name: str, degrees: float) -> None:
    """Raises the photo `degrees` above where it was taken, still facing the product: a
    camera slightly off its place, as COLMAP leaves one that few matches hold."""
    import cv2

    position = scene.c2w[scene.names.index(name), :3, 3] - scene.object_center
    axis = np.cross(position, scene.up)
    axis *= np.radians(degrees) / np.linalg.norm(axis)
    move_one_camera(model, scene, name, cv2.Rodrigues(axis)[0])


def test_a_right_model_keeps_every_camera(symmetric):
    scene, ws = symmetric
    summary = json.loads((ws.colmap_dir / "summary.json").read_text())
    assert summary["placed"] == len(scene.names), summary["images"]
    names, est, true = placed_poses(ws, scene)
    s, r, _ = umeyama(est[:, :3, 3], true[:, :3, 3])
    errors = rotation_errors_deg(true[:, :3, :3], np.einsum("ij,njk->nik", r, est[:, :3, :3]))
    assert np.median(errors) < 1.0 and errors.max() < 3.0, errors


def test_a_workspace_placed_before_product_points_seeds_its_masks_from_colmap(symmetric,
                                                                             tmp_path):
    """A job whose poses came from an earlier version (no dataset/product_points.ply) and
    trains again: its masks are seeded from COLMAP's own points, without the bottom slice
    of the box, where they may lie on the table."""
    scene, ws = symmetric
    old = Workspace(tmp_path / "ws").ensure()
    shutil.copytree(ws.colmap_dir, old.colmap_dir, dirs_exist_ok=True)
    old.model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ws.object_json, old.object_json)
    box = load_product(ws).points_box

    seeds = sparse_product_points(old, box)

    assert seeds is not None and len(seeds) >= 20, seeds
    assert (seeds >= box.lo).all() and (seeds <= box.hi).all()
    assert (seeds[:, 2] > box.lo[2] + 0.1 * (box.hi[2] - box.lo[2])).all()
    # The same frame as the product's own points: they are mostly COLMAP's points too.
    own = sparse_product_points(ws, box)
    nearest = np.min(np.linalg.norm(seeds[:, None] - own[None], axis=2), axis=1)
    assert np.median(nearest) < 1e-3 * np.linalg.norm(box.hi - box.lo), np.median(nearest)


def test_a_mirrored_camera_is_placed_again_where_it_was_taken(symmetric):
    scene, ws = symmetric
    model = pycolmap.Reconstruction(str(ws.colmap_dir))
    name = scene.names[5]
    mirror_one_camera(model, scene, name)

    verdicts = pose_check.check_poses(model, ws.colmap_dir / "database.db", scene.names)

    assert [(v.name, v.replaced) for v in verdicts] == [(name, True)], verdicts
    assert_placed_where_taken(model, scene, name)


def assert_placed_where_taken(model, scene: SyntheticScene, name: str) -> None:
    ids = sorted(model.reg_image_ids())
    index = {n: k for k, n in enumerate(scene.names)}
    others = [i for i in ids if model.image(i).name != name]
    centers = np.array([model.image(i).projection_center() for i in others])
    true = scene.c2w[[index[model.image(i).name] for i in others]]
    s, r, t = umeyama(centers, true[:, :3, 3])
    moved = next(model.image(i) for i in ids if model.image(i).name == name)
    placed = s * r @ moved.projection_center() + t
    assert np.linalg.norm(placed - scene.c2w[index[name], :3, 3]) < 0.05 * scene.orbit_radius
    rotation = r @ moved.cam_from_world().rotation.matrix().T
    assert rotation_errors_deg(scene.c2w[index[name], None, :3, :3], rotation[None]) < 2.0


def test_a_camera_nudged_off_its_place_is_placed_again_where_it_was_taken(symmetric):
    scene, ws = symmetric
    model = pycolmap.Reconstruction(str(ws.colmap_dir))
    name = scene.names[9]
    nudge_one_camera(model, scene, name, 5.0)

    verdicts = pose_check.check_poses(model, ws.colmap_dir / "database.db", scene.names)

    assert [(v.name, v.replaced) for v in verdicts] == [(name, True)], verdicts
    assert_placed_where_taken(model, scene, name)


def test_a_nudged_camera_that_cannot_be_placed_again_is_left_out_with_its_reason(
        symmetric, monkeypatch):
    """Most of its matches still fall within the tolerance: what gives it away is how far
    they all miss, against how far the other photos' matches do."""
    scene, ws = symmetric
    model = pycolmap.Reconstruction(str(ws.colmap_dir))
    name = scene.names[9]
    nudge_one_camera(model, scene, name, 5.0)
    monkeypatch.setattr(pose_check, "MIN_CORRESPONDENCES", 10**6)

    verdicts = pose_check.check_poses(model, ws.colmap_dir / "database.db", scene.names)

    assert [(v.name, v.replaced) for v in verdicts] == [(name, False)], verdicts
    assert verdicts[0].reason.startswith(
        "placed inconsistently (its matches with other photos miss where it was put by ")
    assert name not in {model.image(i).name for i in model.reg_image_ids()}


def median_miss_px(model, database: Path, image_id: int) -> tuple[float, float]:
    """(median distance of this photo's verified matches from where the poses put them,
    the same for every other pair), in pixels."""
    with pycolmap.Database.open(database) as db:
        keypoints = {i: db.read_keypoints(i)[:, :2] for i in model.reg_image_ids()}
        pair_ids, geometries = db.read_two_view_geometries()
    mine, others = [], []
    for pair_id, geometry in zip(pair_ids, geometries, strict=True):
        a, b = pycolmap.pair_id_to_image_pair(pair_id)
        if a in keypoints and b in keypoints and len(geometry.inlier_matches):
            d = pose_check._distances(model, a, b, np.asarray(geometry.inlier_matches),
                                      keypoints)
            (mine if image_id in (a, b) else others).append(d)
    return float(np.median(np.concatenate(mine))), float(np.median(np.concatenate(others)))


def test_a_right_camera_whose_matches_miss_by_a_pixel_or_so_is_kept(symmetric, tmp_path):
    """A slightly blurry photo, placed right: its matches miss its pose by 1–1.5 px, among
    photos matched to a fraction of a pixel. That is a fine residual: it stays (placed
    again where it was), not left out as "inconsistent"."""
    scene, ws = symmetric
    database = tmp_path / "database.db"
    shutil.copy(ws.colmap_dir / "database.db", database)
    model = pycolmap.Reconstruction(str(ws.colmap_dir))
    name = scene.names[9]
    image_id = next(i for i in model.reg_image_ids() if model.image(i).name == name)
    with pycolmap.Database.open(database) as db:
        keypoints = db.read_keypoints(image_id)
        keypoints[:, :2] += np.random.default_rng(0).normal(0, 2.5, (len(keypoints), 2))
        db.update_keypoints(image_id, keypoints.astype(np.float32))
    mine, others = median_miss_px(model, database, image_id)
    assert 1.0 <= mine <= 1.5 and others < 0.4 * mine, (mine, others)

    verdicts = pose_check.check_poses(model, database, scene.names)

    assert all(v.replaced for v in verdicts), verdicts
    assert_placed_where_taken(model, scene, name)


def test_a_mirrored_camera_that_cannot_be_placed_again_is_left_out_with_its_reason(
        symmetric, tmp_path, monkeypatch):
    """Through the whole stage: the photo never reaches the dataset, and the shop owner
    reads why and what to do."""
    scene, _ = symmetric
    name = scene.names[7]
    check = colmap.check_poses

    def mirror_then_check(model, *args, **kwargs):  # as if mapping had put it there
        mirror_one_camera(model, scene, name)
        return check(model, *args, **kwargs)

    monkeypatch.setattr(colmap, "check_poses", mirror_then_check)
    # Too few matches to place it again: it has to go.
    monkeypatch.setattr(pose_check, "MIN_CORRESPONDENCES", 10**6)
    ws = run_poses(scene, tmp_path / "ws")

    summary = json.loads((ws.colmap_dir / "summary.json").read_text())
    entry = next(im for im in summary["images"] if im["name"] == name)
    assert entry["placed"] is False
    assert entry["reason"].startswith("placed inconsistently (only ")
    assert "retake it from beside view_" in entry["reason"]
    assert summary["placed"] == len(scene.names) - 1
    names, _, _ = placed_poses(ws, scene)
    assert name not in names and len(names) == len(scene.names) - 1
    progress = json.loads(ws.progress_json.read_text())
    assert any(c["name"] == name and not c["placed"] for c in progress["metrics"]["cameras"])


def test_a_camera_that_looks_away_from_the_product_is_left_out(symmetric):
    scene, ws = symmetric
    model = pycolmap.Reconstruction(str(ws.colmap_dir))
    image = next(model.image(i) for i in model.reg_image_ids()
                 if model.image(i).name == scene.names[3])
    turn = pycolmap.Rigid3d(pycolmap.Rotation3d(np.diag([-1.0, 1.0, -1.0])), np.zeros(3))
    image.frame.rig_from_world = turn * image.cam_from_world()  # turned its back on it

    verdicts = pose_check.check_poses(model, ws.colmap_dir / "database.db", scene.names)

    assert [(v.name, v.replaced) for v in verdicts] == [(scene.names[3], False)]
    assert verdicts[0].reason.startswith("does not show the product")
    assert not model.exists_image(image.image_id) or not image.has_pose
