"""Training and rendering presets, each sized for the device it runs on.

GPU presets follow nerfacto's defaults. CPU presets are cut down to what a small CPU can
do (measured on 2 cores: nerfacto takes seconds per step and renders about a thousand
rays per second), so that `draft` finishes a 30-photo job in under half an hour and
`test` finishes in seconds, for the test suite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .errors import InputError

PRESET_NAMES = ("test", "draft", "standard", "high")
DEFAULT_PRESET = "standard"
DEFAULT_ITERATIONS = 15000
DEFAULT_FILL_PERCENT = 90
"""The product's widest silhouette over the orbit spans this share of the frame's side."""
MIN_FILL_PERCENT, MAX_FILL_PERCENT = 50, 98


@dataclass(frozen=True)
class Preset:
    name: str
    device: str
    iterations: int
    rays_per_batch: int
    image_size: int
    """Long side, in pixels, of the photos the NeRF trains on."""
    max_photos: int | None
    """Train on at most this many photos, spread evenly over the capture (None: all)."""
    proposal_samples: tuple[int, int]
    nerf_samples: int
    log2_hashmap_size: int
    max_res: int
    frames: int
    """Default frames per turn of the orbit."""
    frame_size: int
    """Default frame width and height, in pixels."""
    checkpoint_every_s: float = 300.0


def _default_iterations() -> int:
    raw = os.environ.get("NERF_DEFAULT_ITERATIONS", "").strip()
    if not raw:
        return DEFAULT_ITERATIONS
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"NERF_DEFAULT_ITERATIONS must be a whole number, not {raw!r}.") from None
    if value < 1:
        raise InputError("NERF_DEFAULT_ITERATIONS must be at least 1.")
    return value


_GPU = dict(device="cuda", rays_per_batch=4096, proposal_samples=(256, 96), nerf_samples=48,
            frames=1440)
# Fewer samples per ray than nerfacto's (256, 96)+48 on a CPU: the rays only cross the
# product's box, so a short interval needs fewer samples, and samples are what a CPU pays for.
PRESETS: dict[tuple[str, str], Preset] = {(p.name, p.device): p for p in (
    Preset(name="test", **_GPU, iterations=1500, image_size=800, max_photos=15,
           log2_hashmap_size=18, max_res=1024, frame_size=512),
    Preset(name="draft", **_GPU, iterations=5000, image_size=1024, max_photos=None,
           log2_hashmap_size=19, max_res=2048, frame_size=640),
    # Its iterations follow NERF_DEFAULT_ITERATIONS (get_preset).
    Preset(name="standard", **_GPU, iterations=DEFAULT_ITERATIONS, image_size=1600,
           max_photos=None, log2_hashmap_size=19, max_res=2048, frame_size=800),
    replace(Preset(name="high", **_GPU, iterations=30000, image_size=1600, max_photos=None,
                   log2_hashmap_size=21, max_res=4096, frame_size=1024),
            rays_per_batch=8192),
    Preset(name="test", device="cpu", iterations=120, rays_per_batch=256, image_size=96,
           max_photos=12, proposal_samples=(48, 24), nerf_samples=16, log2_hashmap_size=15,
           max_res=256, frames=8, frame_size=48, checkpoint_every_s=60.0),
    Preset(name="draft", device="cpu", iterations=700, rays_per_batch=768, image_size=320,
           max_photos=None, proposal_samples=(64, 32), nerf_samples=24,
           log2_hashmap_size=17, max_res=512, frames=36, frame_size=192,
           checkpoint_every_s=120.0),
    Preset(name="standard", device="cpu", iterations=2500, rays_per_batch=1024,
           image_size=480, max_photos=None, proposal_samples=(96, 48), nerf_samples=32,
           log2_hashmap_size=18, max_res=1024, frames=72, frame_size=320),
    Preset(name="high", device="cpu", iterations=6000, rays_per_batch=2048, image_size=640,
           max_photos=None, proposal_samples=(128, 64), nerf_samples=48,
           log2_hashmap_size=19, max_res=2048, frames=144, frame_size=400),
)}


def get_preset(name: str, device: str) -> Preset:
    """The preset `name` ("test", "draft", "standard", "high") sized for `device`."""
    if name not in PRESET_NAMES:
        raise InputError(f"Unknown preset {name!r}: choose one of {', '.join(PRESET_NAMES)}.")
    preset = PRESETS[(name, "cuda" if device.startswith("cuda") else "cpu")]
    if (name, preset.device) == ("standard", "cuda"):
        # Read at call time, so a deployment (or a test) can change it without a restart.
        preset = replace(preset, iterations=_default_iterations())
    return preset
