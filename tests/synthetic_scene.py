"""Synthetic captures with known cameras, ray cast in numpy.

Each kind in `SCENES` is a product built of textured boxes and balls (a solid mosaic
texture with dots: plenty of corners and blobs for SIFT), standing on a ground that is
either a textured table or a plain white sweep, lit by one fixed sun. Cameras orbit it at
two heights; 2×2 supersampling gives clean edges and the alpha coverage of the product
(ground and sky excluded). World frame: up = +Z, the ground is z = 0.

    scene = make_scene(tmp_path / "scene")              # 24 PNG views, 320×240
    scene = make_scene(tmp_path / "s", kind="wide_base")  # another product and backdrop
    scene.write_ground_truth_workspace(ws_root)         # dataset + object.json, true poses
    rgb, alpha = scene.render_view(c2w, scene.K, 320, 240)  # held-out views

The kinds are the captures that broke assumptions before: a product on its own wide flat
base (which is product, not table), on a plain sweep or on a textured table, and a product
that looks nearly the same after half a turn (where a photo can be placed mirrored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.engine.dataset import OPENCV_TO_OPENGL, Frame, Intrinsics, write_transforms
from pipeline.engine.scene import (
    horizontal_basis,
    object_document,
    similarity,
    transform_points,
    transform_poses,
    write_object_json,
)

GROUND_HALF = 5.0
SUN = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
ELEVATIONS_DEG = (12.0, 35.0)
SUPERSAMPLE = 2
SWEEP_RGB = np.array([0.93, 0.93, 0.91])
"""A plain paper sweep: one colour, no detail for SIFT (the sky behind it is as plain)."""


@dataclass(frozen=True)
class Part:
    """A box (`half` has 3 sizes) or a ball (`half` has 1: its radius) of the product."""

    center: tuple[float, float, float]
    half: tuple[float, ...]
    texture: str = "object"
    """"object" (bright mosaic), "base" (a finer, earthier mosaic, like printed wood) or
    "light" (plain cream, a shade off the white sweep: no detail for SIFT)."""
    half_turn_symmetric: bool = False
    """A box whose two broad faces (±y) wear the same texture but for a strip along the
    top: it looks nearly the same from opposite sides."""

    @property
    def is_ball(self) -> bool:
        return len(self.half) == 1

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, h = np.array(self.center), np.array(self.half)
        return c - h, c + h


@dataclass(frozen=True)
class SceneKind:
    parts: tuple[Part, ...]
    ground: str = "table"
    """"table" (textured, seen to the edge of every photo) or "sweep" (plain)."""
    base_height: float = 0.0
    """Height of the product's own flat base (0: none)."""


_BASE = Part((0.0, 0.0, 0.04), (1.0, 0.85, 0.04), texture="base")
BASE_TEXTURES = ("base", "light")
"""The textures of a product's own base: the pixels that are product only because of it."""
SCENES: dict[str, SceneKind] = {
    # A box with a ball resting on it, on a textured table.
    "box_ball": SceneKind(parts=(Part((0.0, 0.0, 0.45), (0.5, 0.35, 0.45)),
                                 Part((0.1, 0.0, 1.15), (0.38,)))),
    # The same on its own wide, flat, textured baseplate, on a plain white sweep.
    "wide_base": SceneKind(parts=(_BASE, Part((0.0, 0.0, 0.53), (0.45, 0.3, 0.45)),
                                  Part((0.1, 0.0, 1.2), (0.3,))),
                           ground="sweep", base_height=0.08),
    # The baseplate model on a textured table: the table goes, the base stays.
    "wide_base_on_table": SceneKind(parts=(_BASE, Part((0.0, 0.0, 0.53), (0.45, 0.3, 0.45)),
                                           Part((0.1, 0.0, 1.2), (0.3,))),
                                    base_height=0.08),
    # The baseplate model whose body is plain cream, on a white sweep: only its ball and its
    # printed base differ from the backdrop by much (white sneakers, porcelain, paper).
    "light_on_white": SceneKind(parts=(_BASE, Part((0.0, 0.0, 0.53), (0.45, 0.3, 0.45),
                                                   texture="light"),
                                       Part((0.1, 0.0, 1.2), (0.3,))),
                                ground="sweep", base_height=0.08),
    # The baseplate model on a base whose top is plain cream: only the base's printed rim
    # tells it from the sweep. (The colmap stage folds this capture in two: the masks'
    # tests take its true poses.)
    "light_top_on_white": SceneKind(parts=(_BASE, Part((0.0, 0.0, 0.0825), (0.96, 0.81, 0.0025),
                                                       texture="light"),
                                           Part((0.0, 0.0, 0.53), (0.45, 0.3, 0.45)),
                                           Part((0.1, 0.0, 1.2), (0.3,))),
                                    ground="sweep", base_height=0.085),
    # A body whose front and back look the same, with a ball on top that does not: a
    # photo of the front can be placed at the back.
    "symmetric": SceneKind(parts=(Part((0.0, 0.0, 0.45), (0.55, 0.3, 0.45),
                                       half_turn_symmetric=True),
                                  Part((0.0, 0.0, 1.2), (0.35,)))),
}

_MISS, _GROUND = -2, -1  # hit codes; parts are 0, 1, …


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


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(s, R, t) minimising |s R src + t - dst|² over the point pairs."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, d, vt = np.linalg.svd(b.T @ a / len(src))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / (a**2).sum(axis=1).mean())
    return scale, rot, mu_d - scale * rot @ mu_s


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


class _Plain:
    """One colour with a faint mottle (±GRAIN), like speckled cream plastic or paper."""

    GRAIN = 0.04
    CELL = 0.06

    def __init__(self, rng: np.random.Generator, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.grain = rng.uniform(-self.GRAIN, self.GRAIN, 4096)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        grain = self.grain[_Texture._hash(np.floor(p / self.CELL))]
        return np.clip(self.rgb * (1.0 + grain[..., None]), 0.0, 1.0)


def _half_turn_canonical(p: np.ndarray, part: Part) -> np.ndarray:
    """Points of the part's back face (−y) moved onto its front face (+y) by a half turn
    about the vertical axis, so both broad faces wear the same texture below a strip along
    the top that differs, as real products are never quite symmetric."""
    center, half = np.array(part.center), np.array(part.half)
    local = p - center
    back = local[:, 1] < -0.999 * half[1]
    fold = back & (local[:, 2] < 0.4 * half[2])
    local[fold, :2] *= -1
    return local + center


class _Renderer:
    def __init__(self, kind: SceneKind, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.kind = kind
        bright = rng.uniform(0.1, 1.0, (24, 3))
        earthy = np.array([[0.55, 0.45, 0.35], [0.35, 0.42, 0.3], [0.6, 0.6, 0.55],
                           [0.3, 0.3, 0.38], [0.7, 0.55, 0.4]])
        self.textures = {"object": _Texture(rng, 0.16, bright),
                         "ground": _Texture(rng, 0.3, earthy)}
        woody = np.array([[0.62, 0.42, 0.22], [0.45, 0.28, 0.15], [0.78, 0.6, 0.38],
                          [0.2, 0.25, 0.45], [0.85, 0.8, 0.7]])
        self.textures["base"] = _Texture(rng, 0.1, woody)
        self.textures["light"] = _Plain(rng, np.array([1.0, 0.98, 0.93]))

    def _cast(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The supersampled rays' (origin, directions, distance, hit code, surface normal)."""
        s = SUPERSAMPLE
        u, v = np.meshgrid((np.arange(width * s) + 0.5) / s, (np.arange(height * s) + 0.5) / s)
        dirs_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1],
                             np.ones_like(u)], axis=-1).reshape(-1, 3)
        dirs = dirs_cam @ c2w[:3, :3].T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origin = c2w[:3, 3]

        t, normal = _ground(origin, dirs)
        hit = np.where(np.isfinite(t), _GROUND, _MISS).astype(np.int16)
        for index, part in enumerate(self.kind.parts):
            t_hit, n_hit = (_ball(origin, dirs, part) if part.is_ball
                            else _box(origin, dirs, part))
            closer = t_hit < t
            t[closer], hit[closer], normal[closer] = t_hit[closer], index, n_hit[closer]
        return origin, dirs, t, hit, normal

    def shows(self, textures: tuple[str, ...], c2w: np.ndarray, K: np.ndarray, width: int,
              height: int) -> np.ndarray:
        """(H,W) share of each pixel whose visible surface wears one of `textures`."""
        hit = self._cast(c2w, K, width, height)[3]
        parts = [i for i, p in enumerate(self.kind.parts) if p.texture in textures]
        s = SUPERSAMPLE
        return np.isin(hit, parts).astype(float).reshape(height, s, width, s).mean(axis=(1, 3))

    def render(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H,W,3) float in [0,1], alpha (H,W) product coverage in [0,1])."""
        s = SUPERSAMPLE
        origin, dirs, t, hit, normal = self._cast(c2w, K, width, height)
        points = origin + dirs * np.where(np.isfinite(t), t, 0.0)[:, None]
        light = 0.45 + 0.55 * np.clip(normal @ SUN, 0.0, 1.0)
        rgb = np.empty_like(dirs)
        sky = hit == _MISS
        ground = hit == _GROUND
        if self.kind.ground == "sweep":
            rgb[sky | ground] = SWEEP_RGB
        else:
            rgb[sky] = np.array([0.78, 0.84, 0.92]) - 0.25 * np.clip(dirs[sky, 2:3], 0, 1)
            rgb[ground] = self.textures["ground"](points[ground]) * light[ground, None]
        for index, part in enumerate(self.kind.parts):
            on = hit == index
            p = points[on]
            if part.half_turn_symmetric:
                p = _half_turn_canonical(p, part)
            rgb[on] = self.textures[part.texture](p) * light[on, None]

        on_product = hit >= 0
        rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        alpha = on_product.astype(float).reshape(height, s, width, s).mean(axis=(1, 3))
        return np.clip(rgb, 0.0, 1.0), alpha


def _ground(origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / dirs[:, 2]
    p = origin[:2] + dirs[:, :2] * np.nan_to_num(t)[:, None]
    ok = (t > 0) & (np.abs(p) < GROUND_HALF).all(axis=1)
    return np.where(ok, t, np.inf), np.tile([0.0, 0.0, 1.0], (len(dirs), 1))


def _box(origin: np.ndarray, dirs: np.ndarray, part: Part) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = part.bounds()
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        t1 = (lo - origin) * inv
        t2 = (hi - origin) * inv
    near = np.minimum(t1, t2)
    t_in, t_out = near.max(axis=1), np.maximum(t1, t2).min(axis=1)
    ok = (t_in <= t_out) & (t_in > 0)
    axis = near.argmax(axis=1)
    normal = np.zeros_like(dirs)
    normal[np.arange(len(dirs)), axis] = -np.sign(dirs[np.arange(len(dirs)), axis])
    return np.where(ok, t_in, np.inf), normal


def _ball(origin: np.ndarray, dirs: np.ndarray, part: Part) -> tuple[np.ndarray, np.ndarray]:
    center, radius = np.array(part.center), part.half[0]
    oc = origin - center
    b = dirs @ oc
    disc = b * b - (oc @ oc - radius**2)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    ok = (disc > 0) & (t > 0)
    points = origin + dirs * t[:, None]
    return np.where(ok, t, np.inf), (points - center) / radius


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
    kind: str
    _renderer: _Renderer = field(repr=False)

    def render_view(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """A view from any camera: (rgb (H,W,3) in [0,1], alpha (H,W) in [0,1])."""
        return self._renderer.render(np.asarray(c2w, float), np.asarray(K, float), width,
                                     height)

    def shows(self, textures: tuple[str, ...], c2w: np.ndarray, K: np.ndarray, width: int,
              height: int) -> np.ndarray:
        """(H,W) bool: the pixels whose visible surface is mostly a part wearing one of
        `textures` (a base, a light top)."""
        return self._renderer.shows(textures, np.asarray(c2w, float), np.asarray(K, float),
                                    width, height) > 0.5

    def from_normalized(self, c2w_gl: np.ndarray) -> np.ndarray:
        """An OpenGL camera-to-world of the normalized frame (as the render stage's orbit)
        as an OpenCV camera-to-world of this scene's world."""
        back = np.linalg.inv(self.to_normalized())
        return transform_poses(back, (c2w_gl @ OPENCV_TO_OPENGL)[None])[0]

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
               seed: int = 0, kind: str = "box_ball") -> SyntheticScene:
    """Renders `n_views` PNG photos of the scene `kind` (a key of SCENES) into
    out_dir/images, half on each of two rings."""
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    scene_kind = SCENES[kind]
    renderer = _Renderer(scene_kind, seed)

    bounds = [part.bounds() for part in scene_kind.parts]
    lo = np.min([b[0] for b in bounds], axis=0)
    hi = np.max([b[1] for b in bounds], axis=0)
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
        kind=kind, _renderer=renderer,
    )
