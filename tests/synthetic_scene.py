"""A synthetic capture with known cameras: a textured product on a textured table.

The product is a box with a ball resting on it, both covered in a solid mosaic texture
with dots (plenty of corners and blobs for SIFT), standing on a textured ground square,
lit by one fixed sun. It is ray cast in numpy from cameras orbiting it at two heights;
2×2 supersampling gives clean edges and the alpha coverage of the product (ground and sky
excluded). World frame: up = +Z, the ground is z = 0.

    scene = make_scene(tmp_path / "scene")              # 24 PNG views, 320×240
    scene.write_ground_truth_workspace(ws_root)         # dataset + object.json, true poses
    rgb, alpha = scene.render_view(c2w, scene.K, 320, 240)  # held-out views
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.engine.dataset import Frame, Intrinsics, write_transforms
from pipeline.engine.scene import (
    horizontal_basis,
    object_document,
    similarity,
    transform_points,
    transform_poses,
    write_object_json,
)

BOX_CENTER = np.array([0.0, 0.0, 0.45])
BOX_HALF = np.array([0.5, 0.35, 0.45])
BALL_CENTER = np.array([0.1, 0.0, 1.15])
BALL_RADIUS = 0.38
GROUND_HALF = 5.0
SUN = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
ELEVATIONS_DEG = (12.0, 35.0)
SUPERSAMPLE = 2

_MISS, _GROUND, _BOX, _BALL = 0, 1, 2, 3


def _object_bounds() -> tuple[np.ndarray, np.ndarray]:
    lo = np.minimum(BOX_CENTER - BOX_HALF, BALL_CENTER - BALL_RADIUS)
    hi = np.maximum(BOX_CENTER + BOX_HALF, BALL_CENTER + BALL_RADIUS)
    return lo, hi


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """OpenCV camera-to-world (x right, y down, z forward) at `eye` looking at `target`."""
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = eye
    return c2w


class _Texture:
    """A solid texture: a mosaic of random colours with light and dark dots over it."""

    def __init__(self, rng: np.random.Generator, cell: float, palette: np.ndarray) -> None:
        self.cell = cell
        self.colours = palette[rng.integers(0, len(palette), 4096)] * rng.uniform(
            0.55, 1.0, (4096, 1))
        self.jitter = rng.uniform(0.2, 0.8, (4096, 3))
        self.dot_radius = rng.uniform(0.12, 0.3, 4096)
        self.dot_shade = rng.choice([0.15, 1.6], 4096)

    @staticmethod
    def _hash(cells: np.ndarray) -> np.ndarray:
        c = cells.astype(np.int64)
        return ((c[..., 0] * 73856093) ^ (c[..., 1] * 19349663) ^ (c[..., 2] * 83492791)) & 4095

    def __call__(self, p: np.ndarray) -> np.ndarray:
        rgb = self.colours[self._hash(np.floor(p / self.cell))]
        dots = p / (0.45 * self.cell)
        h = self._hash(np.floor(dots) + 7919)
        offset = np.linalg.norm(dots - np.floor(dots) - self.jitter[h], axis=-1)
        shade = np.where(offset < self.dot_radius[h], self.dot_shade[h], 1.0)
        return np.clip(rgb * shade[..., None], 0.0, 1.0)


class _Renderer:
    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        bright = rng.uniform(0.1, 1.0, (24, 3))
        earthy = np.array([[0.55, 0.45, 0.35], [0.35, 0.42, 0.3], [0.6, 0.6, 0.55],
                           [0.3, 0.3, 0.38], [0.7, 0.55, 0.4]])
        self.object_texture = _Texture(rng, 0.16, bright)
        self.ground_texture = _Texture(rng, 0.3, earthy)

    def render(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H,W,3) float in [0,1], alpha (H,W) product coverage in [0,1])."""
        s = SUPERSAMPLE
        u, v = np.meshgrid((np.arange(width * s) + 0.5) / s, (np.arange(height * s) + 0.5) / s)
        dirs_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1],
                             np.ones_like(u)], axis=-1).reshape(-1, 3)
        dirs = dirs_cam @ c2w[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origin = c2w[:3, 3]

        t = np.full(len(dirs), np.inf)
        kind = np.zeros(len(dirs), np.int8)
        normal = np.zeros_like(dirs)
        for hit_kind, (t_hit, n_hit) in ((_GROUND, _ground(origin, dirs)),
                                          (_BOX, _box(origin, dirs)),
                                          (_BALL, _ball(origin, dirs))):
            closer = t_hit < t
            t[closer], kind[closer], normal[closer] = t_hit[closer], hit_kind, n_hit[closer]

        points = origin + dirs * np.where(np.isfinite(t), t, 0.0)[:, None]
        rgb = np.empty_like(dirs)
        sky = kind == _MISS
        rgb[sky] = np.array([0.78, 0.84, 0.92]) - 0.25 * np.clip(dirs[sky, 2:3], 0, 1)
        light = 0.45 + 0.55 * np.clip(normal @ SUN, 0.0, 1.0)
        on_object = (kind == _BOX) | (kind == _BALL)
        rgb[on_object] = self.object_texture(points[on_object]) * light[on_object, None]
        ground = kind == _GROUND
        rgb[ground] = self.ground_texture(points[ground]) * light[ground, None]

        rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        alpha = on_object.astype(float).reshape(height, s, width, s).mean(axis=(1, 3))
        return np.clip(rgb, 0.0, 1.0), alpha


def _ground(origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / dirs[:, 2]
    p = origin[:2] + dirs[:, :2] * np.nan_to_num(t)[:, None]
    ok = (t > 0) & (np.abs(p) < GROUND_HALF).all(axis=1)
    return np.where(ok, t, np.inf), np.tile([0.0, 0.0, 1.0], (len(dirs), 1))


def _box(origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t1 = (BOX_CENTER - BOX_HALF - origin) * inv
        t2 = (BOX_CENTER + BOX_HALF - origin) * inv
    near = np.minimum(t1, t2)
    t_in, t_out = near.max(axis=1), np.maximum(t1, t2).min(axis=1)
    ok = (t_in <= t_out) & (t_in > 0)
    axis = near.argmax(axis=1)
    normal = np.zeros_like(dirs)
    normal[np.arange(len(dirs)), axis] = -np.sign(dirs[np.arange(len(dirs)), axis])
    return np.where(ok, t_in, np.inf), normal


def _ball(origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    oc = origin - BALL_CENTER
    b = dirs @ oc
    disc = b * b - (oc @ oc - BALL_RADIUS**2)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    ok = (disc > 0) & (t > 0)
    points = origin + dirs * t[:, None]
    return np.where(ok, t, np.inf), (points - BALL_CENTER) / BALL_RADIUS


@dataclass
class SyntheticScene:
    images_dir: Path
    names: list[str]
    c2w: np.ndarray  # (N,4,4) OpenCV camera-to-world, world up = +Z
    K: np.ndarray  # (3,3)
    alpha: np.ndarray  # (N,H,W) product coverage
    object_center: np.ndarray
    object_radius: float
    orbit_radius: float
    up: np.ndarray
    bbox_min: np.ndarray  # the product's axis-aligned box in the world frame
    bbox_max: np.ndarray
    width: int
    height: int
    _renderer: _Renderer = field(repr=False)

    def render_view(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """A view from any camera: (rgb (H,W,3) in [0,1], alpha (H,W) in [0,1])."""
        return self._renderer.render(np.asarray(c2w, float), np.asarray(K, float), width,
                                     height)

    def to_normalized(self) -> np.ndarray:
        """The similarity from this world to the normalized frame the colmap stage uses."""
        basis = horizontal_basis(self.up, self.c2w[0, :3, 3] - self.object_center)
        return similarity(self.object_center, basis, self.object_radius)

    def write_ground_truth_workspace(self, ws_root: Path) -> None:
        """dataset/ and model/object.json as the colmap stage writes them, from true poses."""
        ws_root = Path(ws_root)
        images = ws_root / "dataset" / "images"
        images.mkdir(parents=True, exist_ok=True)
        t = self.to_normalized()
        poses = transform_poses(t, self.c2w)
        camera = Intrinsics(self.width, self.height, float(self.K[0, 0]), float(self.K[1, 1]),
                            float(self.K[0, 2]), float(self.K[1, 2]))
        frames = []
        for name, c2w in zip(self.names, poses, strict=True):
            (images / name).write_bytes((self.images_dir / name).read_bytes())
            frames.append(Frame(name, c2w, camera))
        write_transforms(ws_root / "dataset", frames)
        corners = np.array([[x, y, z] for x in (self.bbox_min[0], self.bbox_max[0])
                            for y in (self.bbox_min[1], self.bbox_max[1])
                            for z in (self.bbox_min[2], self.bbox_max[2])])
        box = transform_points(t, corners)
        write_object_json(ws_root / "model" / "object.json",
                          object_document(t, poses, box.min(axis=0), box.max(axis=0)))


def make_scene(out_dir: Path, *, n_views: int = 24, width: int = 320, height: int = 240,
               seed: int = 0) -> SyntheticScene:
    """Renders `n_views` PNG photos into out_dir/images, half on each of two rings."""
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    renderer = _Renderer(seed)

    lo, hi = _object_bounds()
    center = (lo + hi) / 2
    # The colmap stage's rule: the sphere around the product's box, so the box fits in it.
    radius = float(np.linalg.norm(hi - lo) / 2)
    orbit_radius = 3.3 * radius
    focal = 0.84 * width
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])

    ring_sizes = (n_views - n_views // 2, n_views // 2)
    names, poses, alphas = [], [], []
    for ring, (count, elevation) in enumerate(zip(ring_sizes, ELEVATIONS_DEG, strict=True)):
        for i in range(count):
            # Half a step between the rings; a little hand-held jitter in every pose.
            azimuth = np.radians(360.0 * (i + 0.5 * ring) / count + rng.uniform(-3, 3))
            el = np.radians(elevation + rng.uniform(-2, 2))
            dist = orbit_radius * rng.uniform(0.97, 1.03)
            eye = center + dist * np.array([np.cos(el) * np.cos(azimuth),
                                            np.cos(el) * np.sin(azimuth), np.sin(el)])
            c2w = look_at(eye, center + rng.uniform(-0.04, 0.04, 3) * radius)
            rgb, alpha = renderer.render(c2w, K, width, height)
            name = f"view_{len(names):03d}.png"
            Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(images_dir / name)
            names.append(name)
            poses.append(c2w)
            alphas.append(alpha)

    return SyntheticScene(
        images_dir=images_dir, names=names, c2w=np.stack(poses), K=K, alpha=np.stack(alphas),
        object_center=center, object_radius=radius, orbit_radius=orbit_radius,
        up=np.array([0.0, 0.0, 1.0]), bbox_min=lo, bbox_max=hi, width=width, height=height,
        _renderer=renderer,
    )
