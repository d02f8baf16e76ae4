"""Quality benchmark: renders of held-out photos against the photos themselves.

    python bench/quality.py [--scenes wide_base wide_base_on_table light_on_white symmetric
                             skull] [--preset draft] [--views 32] [--orbit-frames 12]
                            [--out DIR [--reuse]] [--seed N]

For each scene the real colmap stage places ALL the photos (so the held-out ones get poses
in the same frame), then every 8th photo in shooting order (index 0, 8, 16, …) is taken out
of dataset/transforms.json, the train stage trains on the rest, and each held-out photo's
viewpoint is rendered at its estimated pose and intrinsics through render.render_view with
the product's crop box, as the frames are. Per view and as a mean per scene it prints:

- PSNR over white (the photo's product pixels, composited with the true alpha, against
  the render composited by its own alpha), on the whole view and on a crop around the
  product (the white backdrop flatters the whole view);
- SSIM (scikit-image) of the same composites on the whole view;
- alpha IoU (render alpha > 0.5 against true alpha > 0.5);
- stray alpha: the share of the view's pixels with alpha > 0.05 outside the true
  silhouette (true alpha > 0.05) grown by 2 px: haze and floaters in clean air;
- see-through: the share of the product's inside (true alpha > 0.95, 2 px in from its
  edge) where the render's alpha is under 0.9: a product a dark page shows through.

Synthetic scenes (tests/synthetic_scene.py) have the true alpha. The skull photos have
none: their truth is the mask the engine's own GrabCut makes for the held-out photo (the
same call the train stage makes), so its IoU measures agreement with the engine's masks.

It also renders a subset of the job's orbit (the render stage's own framing: elevation,
distance, focal length, principal point and frame size as its frames) and reports how the
product fills them: its widest silhouette (alpha > 0.5) over those frames as a share of the
frame's side, and the farthest any frame's silhouette centre lies from the frame's centre.
For scenes with a flat base it renders the scene's true alpha from the same cameras mapped
into the true world (a similarity fitted to the camera centres), and reports which share of
the visible base pixels (the pixels that are product only because of the base) the frame
covers: min over frames.

Training is seeded (pipeline.engine.train.TRAIN_SEED, as every job trains), and another seed
trains another NeRF from the same photos and masks. `--seed N` trains with N instead; with
`--out DIR --reuse` it keeps the poses and trains again, so a few seeds on one scene give
training's own spread: a change smaller than it is not a change.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.engine.colmap import estimate_poses  # noqa: E402
from pipeline.engine.dataset import OPENCV_TO_OPENGL, Frame, Intrinsics, read_transforms  # noqa: E402
from pipeline.engine.device import pick_device  # noqa: E402
from pipeline.engine.masks import GRABCUT_LONG_SIDE, grabcut_mask  # noqa: E402
from pipeline.engine.orbit import framing, orbit  # noqa: E402
from pipeline.engine.presets import get_preset  # noqa: E402
from pipeline.engine.product import load_product  # noqa: E402
from pipeline.engine.render import View, chunk_rays, load_pipeline, render_view  # noqa: E402
from pipeline.engine.train import TRAIN_SEED, train  # noqa: E402
from pipeline.engine.trainset import sparse_product_points  # noqa: E402
from pipeline.engine.workspace import Workspace  # noqa: E402
from tests.synthetic_scene import BASE_TEXTURES, make_scene, umeyama  # noqa: E402

try:  # the render stage's framing and floater clearing; an earlier engine had neither
    from pipeline.engine.framing import frame_product
    from pipeline.engine.render import load_for_rendering, rendered_framing
except ImportError:  # pragma: no cover - for measuring an earlier engine
    frame_product = load_for_rendering = rendered_framing = None

HOLD_OUT_EVERY = 8
SKULL = Path("/work/shared/datasets/skull")
SCENE_NAMES = ("wide_base", "wide_base_on_table", "light_on_white", "symmetric", "skull")
STRAY_ALPHA = 0.05
STRAY_GROW_PX = 2
SOLID_ALPHA = 0.9


def composite_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha[..., None] + (1.0 - alpha[..., None])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def crop_around(a: np.ndarray, b: np.ndarray, margin: float = 0.08) -> tuple[slice, slice]:
    """The rectangle around either alpha's product pixels, with a margin."""
    ys, xs = np.nonzero((a > 0.5) | (b > 0.5))
    h, w = a.shape
    if len(xs) == 0:
        return slice(0, h), slice(0, w)
    pad = max(2, round(margin * max(np.ptp(xs), np.ptp(ys))))
    return (slice(max(0, ys.min() - pad), min(h, ys.max() + pad + 1)),
            slice(max(0, xs.min() - pad), min(w, xs.max() + pad + 1)))


def resize(image: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    if image.dtype == np.uint8:
        return np.asarray(Image.fromarray(image).resize(size, resample))
    return np.asarray(Image.fromarray(image.astype(np.float32)).resize(size, resample))


def undistort(image: np.ndarray, camera: Intrinsics) -> np.ndarray:
    """render_view casts pinhole rays: take the estimated lens distortion out (as compare.py)."""
    dist = np.array([camera.k1, camera.k2, camera.p1, camera.p2], float)
    return cv2.undistort(image, camera.matrix(), dist) if dist.any() else image


class Truth:
    """The held-out photos and their true alpha for one scene."""

    def __init__(self, name: str, photos_dir: Path, scene: Any = None) -> None:
        self.name, self.photos_dir, self.scene = name, photos_dir, scene

    def alpha(self, ws: Workspace, index: int, frame: Frame, size: tuple[int, int],
              image_size: int) -> np.ndarray:
        """True alpha in [0, 1] at the working size, as the photo's camera sees it."""
        if self.scene is not None:
            alpha = self.scene.alpha[index].astype(np.float32)
            return resize(alpha, size, Image.Resampling.BOX).astype(float)
        return engine_mask(ws, frame, size, image_size) / 255.0


def engine_mask(ws: Workspace, frame: Frame, size: tuple[int, int], image_size: int
                ) -> np.ndarray:
    """The engine's mask of a photo (uint8): the train stage's own when it made one,
    otherwise GrabCut with the train stage's box and seeds (trainset.prepare_training_set)."""
    stem = Path(frame.name).stem
    kept = ws.dataset_dir / "masks" / f"{stem}.png"
    if kept.exists():
        with Image.open(kept) as img:
            return resize(np.asarray(img.convert("L")), size, Image.Resampling.BOX)
    product = load_product(ws)
    # The box the masks search: Product.search_box where the engine has one, else crop_box.
    box = getattr(product, "search_box", product.crop_box)
    points = sparse_product_points(ws, box)
    with Image.open(ws.dataset_dir / "images" / frame.name) as img:
        rgb = img.convert("RGB")
        # As the train stage loads it: GrabCut's working size or the training size.
        scale = min(1.0, max(image_size, GRABCUT_LONG_SIDE) / max(rgb.size))
        work = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = np.asarray(rgb.resize(work, Image.Resampling.LANCZOS))
    camera = frame.camera.resized(rgb.shape[1], rgb.shape[0])
    mask = grabcut_mask(rgb, frame.c2w, camera, box, points)
    return resize(mask, size, Image.Resampling.BOX)


def working_size(camera: Intrinsics, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(camera.width, camera.height))
    return max(1, round(camera.width * scale)), max(1, round(camera.height * scale))


def hold_out(ws: Workspace) -> tuple[list[str], list[str], list[str], dict[str, Frame]]:
    """Takes every 8th photo (shooting order) out of transforms.json.

    Returns (all photo names in order, held-out names, names the colmap stage left out,
    every placed frame by name)."""
    summary = json.loads((ws.colmap_dir / "summary.json").read_text())
    names = [entry["name"] for entry in summary["images"]]
    everything = ws.dataset_dir / "transforms_all.json"
    held = [n for i, n in enumerate(names) if i % HOLD_OUT_EVERY == 0]
    if not everything.exists():  # not held out yet (--reuse finds them held out)
        shutil.copy(ws.transforms_json, everything)
        doc = json.loads(ws.transforms_json.read_text())
        doc["frames"] = [e for e in doc["frames"] if Path(e["file_path"]).name not in held]
        ws.transforms_json.write_text(json.dumps(doc, indent=2))
    frames = {f.name: f for f in read_transforms(everything)}
    unplaced = [n for n in names if n not in frames]
    return names, held, unplaced, frames


def align_to_truth(frames: dict[str, Frame], scene: Any
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity from the normalized frame to the scene's world, fitted on camera centres,
    then again without the cameras far off it: one misplaced camera must not tilt the fit
    and charge its error to every other camera."""
    placed = [n for n in scene.names if n in frames]
    est = np.array([frames[n].c2w[:3, 3] for n in placed])
    true = np.array([scene.c2w[scene.names.index(n)][:3, 3] for n in placed])
    s, rot, t = umeyama(est, true)
    residual = np.linalg.norm(s * est @ rot.T + t - true, axis=1)
    inliers = residual <= 3 * np.median(residual)
    return umeyama(est[inliers], true[inliers]) if inliers.sum() >= 3 else (s, rot, t)


def pose_error(frame: Frame, true_c2w: np.ndarray, sim: tuple[float, np.ndarray, np.ndarray],
               orbit_radius: float) -> tuple[float, float]:
    """(rotation error in degrees, centre error as a share of the orbit radius)."""
    s, rot, t = sim
    r_est = rot @ frame.c2w[:3, :3]
    cos = (np.trace(true_c2w[:3, :3].T @ r_est) - 1) / 2
    centre = s * rot @ frame.c2w[:3, 3] + t
    return (math.degrees(math.acos(float(np.clip(cos, -1, 1)))),
            float(np.linalg.norm(centre - true_c2w[:3, 3]) / orbit_radius))


def stray_share(alpha: np.ndarray, alpha_true: np.ndarray) -> float:
    """Share of the view's pixels with alpha where there is no product, 2 px of slack."""
    grow = 2 * STRAY_GROW_PX + 1
    near = cv2.dilate((alpha_true > STRAY_ALPHA).astype(np.uint8), np.ones((grow, grow), np.uint8))
    return float(((alpha > STRAY_ALPHA) & (near == 0)).mean())


def see_through_share(alpha: np.ndarray, alpha_true: np.ndarray) -> float:
    """Share of the product's inside, 2 px in from its edge, where the render's alpha is
    under SOLID_ALPHA."""
    grow = 2 * STRAY_GROW_PX + 1
    inside = cv2.erode((alpha_true > 0.95).astype(np.uint8), np.ones((grow, grow), np.uint8))
    return float((alpha[inside > 0] < SOLID_ALPHA).mean()) if inside.any() else 0.0


def orbit_views(ws: Workspace, model: Any, grid: Any, chunk: int, device: str, size: int,
                count: int) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """`count` frames of the job's orbit as the render stage frames them: (orbit frame,
    OpenCV intrinsics K, RGBA)."""
    import torch

    product = load_product(ws)
    box = product.crop_box
    if frame_product is not None:
        shot, path = frame_product(grid, box, product.elevation_deg, product.camera_distance,
                                   count, 1, size)
        with torch.no_grad():
            shot = rendered_framing(model, shot, path, box, chunk, device, size)
        focal, cx, cy = shot.focal, shot.cx, shot.cy
    else:
        focal, distance = framing(box, product.camera_distance, size)
        cx = cy = size / 2
        centred = "center" in inspect.signature(orbit).parameters
        path = (orbit(product.elevation_deg, distance, count, center=box.center) if centred
                else orbit(product.elevation_deg, distance, count))
    k = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]])
    out = []
    for frame in path:
        with torch.no_grad():
            rgba, _ = render_view(model, View(frame.c2w, focal, focal, cx, cy, size, size),
                                  box, chunk, device)
        out.append((frame, k, rgba))
    return out


def framing_stats(views: list[tuple[Any, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """The widest silhouette over the orbit frames (share of the frame's side) and the
    farthest a silhouette's centre lies from the frame's centre (share of the side)."""
    widest = off = 0.0
    for _, _, rgba in views:
        ys, xs = np.nonzero(rgba[..., 3] > 127)
        if len(xs) == 0:
            continue
        side = rgba.shape[0]
        widest = max(widest, (np.ptp(xs) + 1) / side, (np.ptp(ys) + 1) / side)
        off = max(off, abs((xs.min() + xs.max() + 1) / 2 / side - 0.5),
                  abs((ys.min() + ys.max() + 1) / 2 / side - 0.5))
    return {"widest": round(float(widest), 3), "centre_off": round(float(off), 3)}


def base_coverage(scene: Any, frames: dict[str, Frame],
                  views: list[tuple[Any, np.ndarray, np.ndarray]]) -> list[dict[str, float]]:
    """Per orbit frame: share of the visible base pixels that the frame's alpha covers."""
    if not any(p.texture in BASE_TEXTURES for p in scene._renderer.kind.parts):
        return []
    s, rot, t = align_to_truth(frames, scene)
    out = []
    for frame, k, rgba in views:
        size = rgba.shape[0]
        c2w = frame.c2w @ OPENCV_TO_OPENGL  # OpenCV, normalized frame
        world = np.eye(4)
        world[:3, :3] = rot @ c2w[:3, :3]
        world[:3, 3] = s * rot @ c2w[:3, 3] + t
        base = scene.shows(BASE_TEXTURES, world, k, size, size)
        ours = rgba[..., 3] > 127
        covered = float((base & ours).sum() / max(1, base.sum()))
        out.append({"azimuth_deg": frame.azimuth_deg, "base_pixels": int(base.sum()),
                    "covered": round(covered, 3)})
    return out


def run_scene(name: str, root: Path, preset: str, views: int, orbit_frames: int,
              device: str, reuse: bool = False, seed: int = TRAIN_SEED) -> dict[str, Any]:
    work = root / name
    reuse = reuse and (work / "ws" / "dataset" / "transforms_all.json").exists()
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
    if name == "skull":
        truth = Truth(name, SKULL)
    else:
        scene = make_scene(work / "scene", n_views=views, kind=name)
        truth = Truth(name, scene.images_dir, scene)
    ws = Workspace(work / "ws").ensure()

    started = time.monotonic()
    if not reuse:
        estimate_poses(ws, images=truth.photos_dir)
    poses_s = time.monotonic() - started
    names, held, unplaced, frames = hold_out(ws)
    trained_names = [n for n in names if n not in held and n in frames]

    started = time.monotonic()
    trained = train(ws, preset=preset, seed=seed)
    train_s = time.monotonic() - started

    p = get_preset(preset, device)
    import torch

    if load_for_rendering is not None:
        pipeline, _, grid = load_for_rendering(ws, device)
    else:
        (pipeline, _), grid = load_pipeline(ws, device), None
    model = pipeline.model
    box = load_product(ws).crop_box
    chunk = chunk_rays(device, sum(model.config.num_proposal_samples_per_ray)
                       + model.config.num_nerf_samples_per_ray)
    sim = align_to_truth(frames, truth.scene) if truth.scene is not None else None

    started = time.monotonic()
    rows = []
    for held_name in held:
        frame = frames.get(held_name)
        if frame is None:
            rows.append({"photo": held_name, "placed": False})
            continue
        index = names.index(held_name)
        size = working_size(frame.camera, p.image_size)
        camera = frame.camera.resized(*size)
        with Image.open(ws.dataset_dir / "images" / held_name) as img:
            photo = np.asarray(img.convert("RGB").resize(size, Image.Resampling.LANCZOS))
        alpha_true = truth.alpha(ws, index, frame, size, p.image_size)
        photo = undistort(photo, camera).astype(float) / 255.0
        alpha_true = undistort(alpha_true.astype(np.float32), camera).astype(float)
        view = View(frame.c2w @ OPENCV_TO_OPENGL, camera.fx, camera.fy, camera.cx, camera.cy,
                    size[0], size[1])
        with torch.no_grad():
            rgba, _ = render_view(model, view, box, chunk, device)
        alpha = rgba[..., 3] / 255.0
        ours = composite_white(rgba[..., :3] / 255.0, alpha)
        theirs = composite_white(photo, alpha_true)
        crop = crop_around(alpha, alpha_true)
        a, b = alpha > 0.5, alpha_true > 0.5
        from skimage.metrics import structural_similarity

        row = {"photo": held_name, "placed": True, "size": f"{size[0]}x{size[1]}",
               "psnr": round(psnr(ours, theirs), 2),
               "psnr_crop": round(psnr(ours[crop], theirs[crop]), 2),
               "ssim": round(float(structural_similarity(ours, theirs, channel_axis=2,
                                                         data_range=1.0)), 4),
               "alpha_iou": round(float((a & b).sum() / max(1, (a | b).sum())), 4),
               "stray": round(stray_share(alpha, alpha_true), 5),
               "see_through": round(see_through_share(alpha, alpha_true), 4)}
        if sim is not None:
            rot_err, pos_err = pose_error(frame, truth.scene.c2w[index], sim,
                                          truth.scene.orbit_radius)
            row.update(rot_err_deg=round(rot_err, 2), pos_err=round(pos_err, 4))
        rows.append(row)
        Image.fromarray(rgba).save(work / f"render_{Path(held_name).stem}.png")
    render_s = time.monotonic() - started

    started = time.monotonic()
    spin = orbit_views(ws, model, grid, chunk, device, p.frame_size, orbit_frames)
    coverage = base_coverage(truth.scene, frames, spin) if truth.scene is not None else []
    orbit_s = time.monotonic() - started

    scored = [r for r in rows if r.get("placed")]

    def mean(key: str, digits: int = 3) -> float | None:
        return round(float(np.mean([r[key] for r in scored])), digits) if scored else None

    return {
        "scene": name, "preset": preset, "device": device, "seed": seed,
        "photos": len(names), "placed": len(frames), "unplaced": unplaced,
        "reused": reuse, "model_reused": trained.resumed_from is not None,
        "trained_on": trained.photos, "trainable": len(trained_names),
        "held_out": len(held), "held_out_placed": len(scored),
        "held_out_not_placed": [r["photo"] for r in rows if not r.get("placed")],
        "truth": "engine GrabCut mask (no true alpha)" if truth.scene is None else "true alpha",
        "seconds": {"poses": round(poses_s, 1), "train": round(train_s, 1),
                    "render": round(render_s, 1), "orbit": round(orbit_s, 1)},
        "seconds_per_step": round(trained.seconds_per_step or float("nan"), 3),
        "steps": trained.steps,
        "psnr": mean("psnr"), "psnr_crop": mean("psnr_crop"), "ssim": mean("ssim"),
        "alpha_iou": mean("alpha_iou"), "stray": mean("stray", 5),
        "see_through": mean("see_through", 4),
        "max_stray": max((r["stray"] for r in scored), default=None),
        "framing": framing_stats(spin),
        "min_base_coverage": min((c["covered"] for c in coverage), default=None),
        "views": rows, "orbit": coverage,
    }


def print_table(result: dict[str, Any]) -> None:
    s = result["seconds"]
    print(f"\n== {result['scene']}: preset {result['preset']}, device {result['device']}, "
          f"training seed {result['seed']}, truth: {result['truth']}")
    print(f"photos {result['photos']}, placed {result['placed']}"
          + (f" (not placed: {', '.join(result['unplaced'])})" if result["unplaced"] else "")
          + f"; trained on {result['trained_on']} of {result['trainable']} placed; held out "
          f"{result['held_out']}, of which placed {result['held_out_placed']}"
          + (f" (not placed, not scored: {', '.join(result['held_out_not_placed'])})"
             if result["held_out_not_placed"] else ""))
    if result.get("model_reused"):
        print("poses and model reused from an earlier run (--reuse): seconds below are not "
              "theirs")
    elif result.get("reused"):
        print("poses reused from an earlier run (--reuse), model trained again")
    print(f"seconds: poses {s['poses']}, train {s['train']} ({result['steps']} steps, "
          f"{result['seconds_per_step']} s/step), held-out renders {s['render']}, "
          f"orbit check {s['orbit']}")
    header = (f"{'photo':<14}{'size':>9}{'PSNR':>8}{'crop':>8}{'SSIM':>8}{'IoU':>8}"
              f"{'stray':>8}{'see-thru':>9}")
    pose = any("rot_err_deg" in r for r in result["views"])
    if pose:
        header += f"{'rot°':>8}{'pos':>8}"
    print(header)
    for r in result["views"]:
        if not r["placed"]:
            print(f"{r['photo']:<14}  not placed by the colmap stage: not scored")
            continue
        line = (f"{r['photo']:<14}{r['size']:>9}{r['psnr']:>8.2f}{r['psnr_crop']:>8.2f}"
                f"{r['ssim']:>8.3f}{r['alpha_iou']:>8.3f}{r['stray']:>8.2%}"
                f"{r['see_through']:>9.1%}")
        if pose:
            line += f"{r['rot_err_deg']:>8.2f}{r['pos_err']:>8.3f}"
        print(line)
    if result["psnr"] is not None:
        print(f"{'mean':<14}{'':>9}{result['psnr']:>8.2f}{result['psnr_crop']:>8.2f}"
              f"{result['ssim']:>8.3f}{result['alpha_iou']:>8.3f}{result['stray']:>8.2%}"
              f"{result['see_through']:>9.1%}")
    f = result["framing"]
    print(f"orbit frames: widest silhouette {f['widest']:.1%} of the frame's side, centres "
          f"within {f['centre_off']:.1%} of the frame's centre")
    if result["orbit"]:
        cov = " ".join(f"{c['azimuth_deg']:.0f}°:{c['covered']:.2f}" for c in result["orbit"])
        print(f"base covered per orbit frame (azimuth: share of its visible base pixels): "
              f"{cov}")
        print(f"min base coverage: {result['min_base_coverage']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENE_NAMES),
                        choices=SCENE_NAMES)
    parser.add_argument("--preset", default="draft")
    parser.add_argument("--views", type=int, default=32, help="photos per synthetic scene")
    parser.add_argument("--orbit-frames", type=int, default=12,
                        help="orbit frames checked for the base (the job's orbit, subsampled)")
    parser.add_argument("--out", type=Path, help="keep the workspaces here (default: temp)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --out: keep the poses and trained models an earlier run "
                        "left there and measure again (after a change to rendering)")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED,
                        help="training's seed (default: the jobs' own); with --reuse, another "
                        "seed trains again on the same poses")
    args = parser.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    root.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    print(f"engine at {ROOT}; workspaces under {root}; device {device}; preset {args.preset}")
    results = []
    for name in args.scenes:
        if name == "skull" and not SKULL.is_dir():
            print(f"\n== skull: no photos at {SKULL}; skipped")
            continue
        result = run_scene(name, root, args.preset, args.views, args.orbit_frames, device,
                           args.reuse, args.seed)
        print_table(result)
        (root / name / "result.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    summary = [{k: v for k, v in r.items() if k not in ("views", "orbit")} for r in results]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
