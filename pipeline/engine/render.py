"""The render stage: transparent RGBA frames all around the product, from the trained NeRF.

Only pixels whose ray crosses the product's crop box are rendered; the rest of the frame
stays transparent without any work. Rays go through the model in chunks sized to the
device's free memory. A frame's alpha is the NeRF's accumulation; its colour is the NeRF's
colour over a black background divided by that alpha (PNG stores straight alpha).

Writes WS/frames/batch_00.zip, batch_01.zip, … (frame_0000.png, … inside) and
WS/frames/manifest.json; then WS/frames/compare/ (see compare.py): a few photos beside
renders from their own cameras, and how faithful the spin is.
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .compare import compare_views, pick_views
from .dataset import Intrinsics
from .density import DensityGrid, clear_floaters, density_grid, model_density
from .device import available_memory_bytes, pick_device
from .errors import InputError, ResourceError
from .framing import Framing, check_fill, frame_product
from .mask_review import review_masks
from .orbit import OrbitFrame
from .presets import DEFAULT_FILL_PERCENT, DEFAULT_PRESET, get_preset
from .product import ProductBox, load_product
from .progress import Progress
from .train import checkpoint_dir, latest_checkpoint, read_train_state
from .workspace import BATCH_NAME, FRAME_NAME, NERF_CONFIG, Workspace, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
MIN_SIZE = 16
HOST_BYTES_PER_PIXEL = 96
"""Host memory per frame pixel: ray origins and directions, outputs, the RGBA image."""
BYTES_PER_SAMPLE = 3072
"""Device memory per sample along a ray while the model evaluates it (measured with margin)."""
CHECK_SIZE = 128
"""Frames the framing is checked on are rendered this small..."""
CHECK_ZOOM_OUT = 0.8
"""...and zoomed out this much, so that no silhouette falls off their edge."""
ALPHA_LEVELS = (0.1, 0.9)
"""A NeRF's accumulation is not yet a matte: a short training leaves the product's inside
a little see-through (on bench/quality.py's light-on-white scene, a sixth of its pixels
under 0.9, speckles that show on a dark storefront) and a faint haze beside its edges.
A frame's alpha is 0 up to the first level, 1 from the second and linear between: the
product solid, the air clear, and its outline (alpha 0.5) where the NeRF put it."""


@dataclass(frozen=True)
class RenderResult:
    frames: int
    size: int
    batches: list[Path]
    seconds: float
    render_seconds: float
    """The frames alone, without loading the model."""
    rays: int
    manifest: Path
    comparison: dict[str, Any] | None = None
    """compare.json: the photos beside their renders, their metrics and the verdict."""

    @property
    def seconds_per_frame(self) -> float:
        return self.render_seconds / max(1, self.frames)

    def summary_line(self) -> str:
        line = (f"Rendered {self.frames} frames of {self.size}×{self.size} px in "
                f"{len(self.batches)} batches in {self.seconds:.0f} s "
                f"({self.seconds_per_frame:.2f} s/frame, "
                f"{self.rays / max(self.render_seconds, 1e-9):.0f} "
                "rays/s).")
        if self.comparison and self.comparison.get("verdict"):
            line += f" {self.comparison['verdict_text']}"
        return line


def check_frame_size(size: int, device: str) -> None:
    """Fails with a clear message when a `size`×`size` frame cannot fit in memory."""
    if size < MIN_SIZE:
        raise InputError(f"--size must be at least {MIN_SIZE} pixels.")
    free = available_memory_bytes("cpu")
    need = size * size * HOST_BYTES_PER_PIXEL
    if need > free // 2:
        largest = int(math.sqrt(free // 2 / HOST_BYTES_PER_PIXEL))
        raise ResourceError(
            f"A {size}×{size} px frame needs about {need / 2**30:.1f} GiB of memory and "
            f"{free / 2**30:.1f} GiB is free: choose --size {largest} or less.")


def chunk_rays(device: str, samples_per_ray: int) -> int:
    """Rays per model call so one call uses at most a quarter of the free device memory."""
    free = available_memory_bytes(device)
    rays = free // 4 // (samples_per_ray * BYTES_PER_SAMPLE)
    return int(max(1024, min(1 << 18, rays)) // 1024 * 1024)


def load_pipeline(ws: Workspace, device: str) -> tuple[Any, int]:
    """The trained nerfstudio pipeline from WS/model/, in eval mode, and its step."""
    import yaml

    from .nerfstudio_compat import load_checkpoint

    checkpoint = latest_checkpoint(ws)
    config_path = ws.root / NERF_CONFIG
    if checkpoint is None or not config_path.exists():
        raise InputError(f"The workspace {ws.root} has no trained NeRF yet: run the train "
                         "stage first (python -m pipeline.engine train --workspace WS).")
    # nerfstudio's own config format; the file is ours, written by the train stage.
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    # The workspace may have moved (local disk vs. the Modal volume): point at it again.
    config.output_dir = ws.root
    config.pipeline.datamanager.data = None
    config.pipeline.datamanager.dataparser.data = ws.transforms_train_json
    config.load_dir = checkpoint_dir(ws)
    config.machine.device_type = device
    pipeline = config.pipeline.setup(device=device, test_mode="inference")
    state = load_checkpoint(checkpoint)
    pipeline.load_pipeline(state["pipeline"], state["step"])
    pipeline.eval()
    return pipeline, int(state["step"])


def load_for_rendering(ws: Workspace, device: str) -> tuple[Any, int, DensityGrid]:
    """The trained pipeline as frames render it: its floaters carved out of its hull (see
    density.py), with its density grid (floaters left out), and its step."""
    pipeline, step = load_pipeline(ws, device)
    grid = density_grid(model_density(pipeline.model, device), load_product(ws).crop_box)
    grid, cleared = clear_floaters(pipeline.model.field, grid)
    if cleared:
        log.info("cleared %d hull voxels of floaters apart from the product", cleared)
    return pipeline, step, grid


def rendered_framing(model: Any, shot: Framing, path: list[OrbitFrame], box: ProductBox,
                     chunk: int, device: str, size: int) -> Framing:
    """`shot` checked against the frames themselves: the orbit's widest frames, rendered
    small and zoomed out (nothing may fall off their edge), give the reach of the rendered
    silhouettes (alpha > 0.5), which the density grid only estimates; the focal length is
    set from it."""
    if shot.fill is None or not shot.widest:
        return shot
    small = min(size, CHECK_SIZE)
    scale = small / size * CHECK_ZOOM_OUT
    focal = shot.focal * scale
    cx, cy = small / 2 - focal * shot.offset[0], small / 2 + focal * shot.offset[1]
    ox, oy = shot.offset
    reach = 0.0
    for index in shot.widest:
        rgba, _ = render_view(model, View(path[index].c2w, focal, focal, cx, cy, small, small),
                              box, chunk, device)
        ys, xs = np.nonzero(rgba[..., 3] > 127)
        if len(xs):
            edges = np.array([(xs.min() - cx) / focal - ox, (xs.max() + 1 - cx) / focal - ox,
                              (cy - ys.min()) / focal - oy, (cy - ys.max() - 1) / focal - oy])
            reach = max(reach, float(np.abs(edges).max()))
    return shot.reaching(reach, size) if reach > 0 else shot


def render(
    ws: Workspace,
    *,
    frames: int | None = None,
    rows: int = 1,
    size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fill: int = DEFAULT_FILL_PERCENT,
    progress: Progress | None = None,
) -> RenderResult:
    """Renders `rows` turns of `frames` frames each around the product into WS/frames/, the
    product's widest silhouette spanning `fill` percent of the frame."""
    started = time.monotonic()
    device = pick_device()
    product = load_product(ws)
    state = read_train_state(ws) or {}
    preset = get_preset(state.get("trained_on", {}).get("preset", DEFAULT_PRESET), device)
    frames = preset.frames if frames is None else frames
    size = preset.frame_size if size is None else size
    if frames < 1:
        raise InputError("--frames must be at least 1.")
    if rows < 1:
        raise InputError("--rows must be at least 1.")
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1.")
    check_fill(fill)
    check_frame_size(size, device)

    import torch

    warnings.filterwarnings("ignore", category=UserWarning, module=r"nerfstudio\.")
    pipeline, step, grid = load_for_rendering(ws, device)
    model = pipeline.model
    box = product.crop_box
    shot, path = frame_product(grid, box, product.elevation_deg, product.camera_distance,
                               frames, rows, size, fill)
    samples = sum(model.config.num_proposal_samples_per_ray) + model.config.num_nerf_samples_per_ray
    chunk = chunk_rays(device, samples)
    with torch.no_grad():
        shot = rendered_framing(model, shot, path, box, chunk, device, size)
    log.info("rendering %d frames of %d px on %s, %d rays per chunk", len(path), size, device,
             chunk)

    views = pick_views(ws)
    steps = len(path) + len(views)  # progress counts the comparison's renders too
    frames_dir = ws.frames_dir
    shutil.rmtree(frames_dir, ignore_errors=True)
    frames_dir.mkdir(parents=True)
    entries: list[dict[str, Any]] = []
    batches: list[Path] = []
    rays_total = 0
    loop_started = time.monotonic()
    archive: zipfile.ZipFile | None = None
    with torch.no_grad():
        for frame in path:
            batch = frame.index // batch_size
            if archive is None:
                batches.append(frames_dir / BATCH_NAME.format(batch))
                archive = zipfile.ZipFile(_partial(batches[-1]), "w", zipfile.ZIP_STORED)
            rgba, rays = render_view(model, View.framed(frame.c2w, shot, size), box, chunk,
                                     device)
            rays_total += rays
            name = FRAME_NAME.format(frame.index)
            archive.writestr(name, _png_bytes(rgba))
            entries.append({"index": frame.index, "file": name, "batch": batches[-1].name,
                            "row": frame.row, "azimuth_deg": frame.azimuth_deg,
                            "elevation_deg": frame.elevation_deg})
            if (frame.index + 1) % batch_size == 0 or frame.index == len(path) - 1:
                archive.close()
                archive = None
                _partial(batches[-1]).rename(batches[-1])
            if progress is not None:
                done = frame.index + 1
                progress.update(done / steps, f"frame {done}/{len(path)}",
                                frames_done=done, frames=len(path))
        loop_seconds = time.monotonic() - loop_started

        def render_camera(c2w: np.ndarray, camera: Intrinsics) -> np.ndarray:
            view = View(c2w, camera.fx, camera.fy, camera.cx, camera.cy, camera.width,
                        camera.height)
            return render_view(model, view, box, chunk, device)[0]

        def compared(n: int) -> None:
            if progress is not None:
                progress.update((len(path) + n) / steps,
                                f"compared photo {n}/{len(views)} with its render")

        comparison = compare_views(ws, views, render_camera, on_view=compared)
        review_masks(ws)

    manifest = {
        "count": len(path), "frames_per_row": frames, "rows": rows, "width": size,
        "height": size, "format": "png", "alpha": "straight", "batch_size": batch_size,
        "batches": [b.name for b in batches], "focal_px": round(shot.focal, 3),
        "principal_point_px": [round(shot.cx, 3), round(shot.cy, 3)],
        "camera_distance": round(shot.distance, 4),
        "orbit_center": [round(float(v), 5) for v in shot.center],
        # The asked share; "box" where no silhouette was found (an untrained model).
        "fill_percent": fill, "framed_to": "product" if shot.fill is not None else "box",
        "model_step": step, "frames": entries,
    }
    write_json_atomic(ws.manifest_json, manifest)
    return RenderResult(len(path), size, batches, time.monotonic() - started, loop_seconds,
                        rays_total, ws.manifest_json, comparison)


@dataclass(frozen=True)
class View:
    """A pinhole camera to render: OpenGL camera-to-world in the normalized frame."""

    c2w: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def square(cls, c2w: np.ndarray, focal: float, size: int) -> View:
        return cls(c2w, focal, focal, size / 2, size / 2, size, size)

    @classmethod
    def framed(cls, c2w: np.ndarray, shot: Framing, size: int) -> View:
        """A square frame of the orbit, as `shot` frames the product."""
        return cls(c2w, shot.focal, shot.focal, shot.cx, shot.cy, size, size)


def view_rays(view: View, box: ProductBox
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rays of a view that cross the box: pixel indices (M,), origins, directions,
    and the entry and exit distances along each ray."""
    c2w, width, height = view.c2w, view.width, view.height
    corners = np.array([[x, y, z] for x in (box.lo[0], box.hi[0]) for y in (box.lo[1], box.hi[1])
                        for z in (box.lo[2], box.hi[2])])
    cam = (corners - c2w[:3, 3]) @ c2w[:3, :3]  # into camera axes (OpenGL: looking down -z)
    depth = np.maximum(-cam[:, 2], 1e-6)
    u = view.cx + view.fx * cam[:, 0] / depth
    v = view.cy - view.fy * cam[:, 1] / depth
    # Only the projected box's bounding rectangle gets rays at all.
    x0, x1 = max(0, int(np.floor(u.min()))), min(width, int(np.ceil(u.max())) + 1)
    y0, y1 = max(0, int(np.floor(v.min()))), min(height, int(np.ceil(v.max())) + 1)
    if x0 >= x1 or y0 >= y1:
        empty = np.zeros((0, 3))
        return np.zeros(0, np.int64), empty, empty, np.zeros(0), np.zeros(0)
    ys, xs = np.mgrid[y0:y1, x0:x1]
    xs, ys = xs.ravel(), ys.ravel()
    d_cam = np.stack([(xs + 0.5 - view.cx) / view.fx, -(ys + 0.5 - view.cy) / view.fy,
                      -np.ones(len(xs))], axis=1)
    dirs = d_cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origin = c2w[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (box.lo - origin) / dirs
        t2 = (box.hi - origin) / dirs
    near = np.nanmax(np.minimum(t1, t2), axis=1)
    far = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = far > np.maximum(near, 0.0)
    pixels = (ys * width + xs)[hit]
    origins = np.broadcast_to(origin, (int(hit.sum()), 3))
    return pixels, origins, dirs[hit], np.maximum(near[hit], 0.0), far[hit]


def render_view(model: Any, view: View, box: ProductBox, chunk: int, device: str
                ) -> tuple[np.ndarray, int]:
    """(RGBA uint8 (H,W,4) with straight alpha, rays rendered) for one camera."""
    import torch
    from nerfstudio.cameras.rays import RayBundle

    pixels, origins, dirs, near, far = view_rays(view, box)
    rgba = np.zeros((view.width * view.height, 4), np.float32)
    for start in range(0, len(pixels), chunk):
        sl = slice(start, start + chunk)
        n = len(pixels[sl])

        def column(a: np.ndarray, sl: slice = sl, n: int = n) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a[sl]), dtype=torch.float32,
                                   device=device).reshape(n, -1)

        bundle = RayBundle(
            origins=column(origins), directions=column(dirs),
            pixel_area=torch.full((n, 1), 1.0 / (view.fx * view.fy), device=device),
            camera_indices=torch.zeros((n, 1), dtype=torch.long, device=device),
            nears=column(near), fars=column(far))
        out = model(bundle)
        acc = out["accumulation"].float().clamp(0, 1).cpu().numpy().reshape(n)
        rgb = out["rgb"].float().cpu().numpy().reshape(n, 3)
        rgba[pixels[sl], :3] = rgb / np.maximum(acc, 1e-6)[:, None]
        rgba[pixels[sl], 3] = alpha_levels(acc)
    image = np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8)
    image = image.reshape(view.height, view.width, 4)
    image[image[..., 3] == 0] = 0
    return image, len(pixels)


def alpha_levels(accumulation: np.ndarray) -> np.ndarray:
    """A frame's alpha from the NeRF's accumulation (ALPHA_LEVELS)."""
    low, high = ALPHA_LEVELS
    return np.clip((accumulation - low) / (high - low), 0.0, 1.0)


def _png_bytes(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".part")
