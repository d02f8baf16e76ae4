"""Frames benchmark on the synthetic scene: training and rendering speed, and quality.

    python bench/frames.py [--views 30] [--preset draft] [--out DIR] [--compare-frames 6]

Trains from the scene's true cameras (the poses stage has its own benchmark), then prints
seconds per training step and per frame, PSNR and alpha IoU on held-out views against the
ground truth, and our seconds per frame against nerfstudio's own ns-render code on the same
checkpoint and camera path. ns-render's command refuses to start without ffmpeg, even for
PNG output, so its rendering routine (nerfstudio.scripts.render._render_trajectory_video)
is called directly, with the pipeline loaded by nerfstudio's eval_setup.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.engine.dataset import OPENCV_TO_OPENGL  # noqa: E402
from pipeline.engine.device import pick_device  # noqa: E402
from pipeline.engine.orbit import framing, orbit  # noqa: E402
from pipeline.engine.product import load_product  # noqa: E402
from pipeline.engine.render import View, chunk_rays, load_pipeline, render, render_view  # noqa: E402
from pipeline.engine.scene import transform_poses  # noqa: E402
from pipeline.engine.train import model_base_dir, train  # noqa: E402
from pipeline.engine.workspace import Workspace  # noqa: E402
from tests.synthetic_scene import look_at, make_scene  # noqa: E402

HELD_OUT_AZIMUTHS = (20.0, 85.0, 150.0, 215.0, 280.0, 345.0)
HELD_OUT_ELEVATION = 23.0


def composite_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha[..., None] + (1.0 - alpha[..., None])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def held_out(scene, ws: Workspace, device: str) -> tuple[float, float]:
    """Mean PSNR (over white) and alpha IoU on views between the two capture rings."""
    pipeline, _ = load_pipeline(ws, device)
    model = pipeline.model
    box = load_product(ws).crop_box
    to_normalized = scene.to_normalized()
    chunk = chunk_rays(device, sum(model.config.num_proposal_samples_per_ray)
                       + model.config.num_nerf_samples_per_ray)
    psnrs, ious = [], []
    for azimuth in HELD_OUT_AZIMUTHS:
        az, el = math.radians(azimuth), math.radians(HELD_OUT_ELEVATION)
        eye = scene.object_center + scene.orbit_radius * np.array(
            [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        c2w_cv = look_at(eye, scene.object_center)
        rgb_true, alpha_true = scene.render_view(c2w_cv, scene.K, scene.width, scene.height)
        c2w_gl = transform_poses(to_normalized, c2w_cv[None])[0] @ OPENCV_TO_OPENGL
        k = scene.K
        view = View(c2w_gl, k[0, 0], k[1, 1], k[0, 2], k[1, 2], scene.width, scene.height)
        import torch

        with torch.no_grad():
            rgba, _ = render_view(model, view, box, chunk, device)
        alpha = rgba[..., 3] / 255.0
        ours = composite_white(rgba[..., :3] / 255.0, alpha)
        psnrs.append(psnr(ours, composite_white(rgb_true, alpha_true)))
        a, b = alpha > 0.5, alpha_true > 0.5
        ious.append(float((a & b).sum() / max(1, (a | b).sum())))
    return float(np.mean(psnrs)), float(np.mean(ious))


def ours_vs_ns_render(ws: Workspace, device: str, frames: int, size: int) -> tuple[float, float]:
    """Seconds per frame: our renderer and nerfstudio's, same checkpoint and orbit."""
    import torch
    from nerfstudio.cameras.cameras import Cameras, CameraType
    from nerfstudio.data.scene_box import OrientedBox
    from nerfstudio.scripts.render import CropData, _render_trajectory_video
    from nerfstudio.utils.eval_utils import eval_setup

    from pipeline.engine.nerfstudio_compat import allow_checkpoint_loading

    product = load_product(ws)
    box = product.crop_box
    focal, distance = framing(box, product.camera_distance, size)
    path = orbit(product.elevation_deg, distance, frames, center=box.center)

    pipeline, _ = load_pipeline(ws, device)
    chunk = chunk_rays(device, sum(pipeline.model.config.num_proposal_samples_per_ray)
                       + pipeline.model.config.num_nerf_samples_per_ray)
    started = time.monotonic()
    with torch.no_grad():
        for frame in path:
            render_view(pipeline.model, View.square(frame.c2w, focal, size), box, chunk, device)
    ours = (time.monotonic() - started) / frames

    allow_checkpoint_loading()
    _, ns_pipeline, _, _ = eval_setup(model_base_dir(ws) / "config.yml", test_mode="inference")
    cameras = Cameras(
        camera_to_worlds=torch.tensor(np.stack([f.c2w[:3] for f in path]), dtype=torch.float32),
        fx=focal, fy=focal, cx=size / 2, cy=size / 2, width=size, height=size,
        camera_type=CameraType.PERSPECTIVE)
    center = (box.lo + box.hi) / 2
    crop = CropData(background_color=torch.zeros(3),
                    obb=OrientedBox.from_params(tuple(map(float, center)), (0.0, 0.0, 0.0),
                                                tuple(map(float, box.hi - box.lo))))
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        _render_trajectory_video(ns_pipeline, cameras, Path(out), ["rgb", "accumulation"],
                                 crop_data=crop, output_format="images", image_format="png")
        theirs = (time.monotonic() - started) / frames
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=30)
    parser.add_argument("--preset", default="draft")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--out", type=Path, help="keep the workspace here (default: temp)")
    parser.add_argument("--compare-frames", type=int, default=6)
    args = parser.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="bench-frames-"))
    device = pick_device()
    started = time.monotonic()
    scene = make_scene(root / "scene", n_views=args.views)
    ws = Workspace(root / "ws").ensure()
    scene.write_ground_truth_workspace(ws.root)
    print(f"scene: {args.views} views {scene.width}×{scene.height} in "
          f"{time.monotonic() - started:.1f} s; device {device}; workspace {ws.root}")

    trained = train(ws, preset=args.preset, iterations=args.iterations)
    print(trained.summary_line())
    rendered = render(ws)
    print(rendered.summary_line())
    quality_psnr, quality_iou = held_out(scene, ws, device)
    ours, theirs = ours_vs_ns_render(ws, device, args.compare_frames, rendered.size)

    results = {
        "preset": args.preset, "device": device, "views": args.views,
        "train_seconds": round(trained.seconds, 1),
        "seconds_per_step": round(trained.seconds_per_step or float("nan"), 3),
        "frames": rendered.frames, "frame_size": rendered.size,
        "seconds_per_frame": round(rendered.seconds_per_frame, 3),
        "held_out_psnr_db": round(quality_psnr, 2), "held_out_alpha_iou": round(quality_iou, 3),
        "compare_frames": args.compare_frames,
        "ours_seconds_per_frame": round(ours, 3), "ns_render_seconds_per_frame": round(theirs, 3),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
