"""GPU prices and the time and cost a job is expected to take.

Prices are Modal's per-hour GPU prices from DESIGN.md. Speeds are rough per-device rates
(CPU figures measured on this project's 2-core machines, see bench/; GPU figures from the reference
job times: 15k nerfacto steps take ~25 min on a T4, ~15 min on an A10G, ~8 min on an
A100). They are estimates shown before a job starts, not promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from pipeline.engine.catalogue import (
    DEFAULT_GPU,
    GPU_STAGES,
    GPUS,
    STAGE_NAMES,
    STAGES,
    get_preset,
)
from pipeline.engine.device import forced_device

# US dollars per hour of GPU time, from the catalogue.
GPU_PRICES_PER_HOUR: dict[str, Decimal] = {g.name: g.price_per_hour for g in GPUS.values()}


@dataclass(frozen=True)
class DeviceSpeed:
    seconds_per_step: float  # one training step of `reference_rays` rays
    rays_per_second: float  # rendering
    colmap_seconds_per_photo: float
    reference_rays: int = 4096


SPEEDS: dict[str, DeviceSpeed] = {
    # Measured on the skull photos (29) with the CPU draft preset: 0.55 s per 768-ray step,
    # ~2.9k rays/s rendering inside the product's box, 5.5 s per photo for poses.
    "cpu": DeviceSpeed(seconds_per_step=0.75, rays_per_second=2_500,
                       colmap_seconds_per_photo=5.5, reference_rays=1024),
    "cuda": DeviceSpeed(seconds_per_step=0.1, rays_per_second=400_000,
                        colmap_seconds_per_photo=1.0),
    "T4": DeviceSpeed(seconds_per_step=0.1, rays_per_second=400_000, colmap_seconds_per_photo=1.0),
    "A10G": DeviceSpeed(seconds_per_step=0.06, rays_per_second=800_000,
                        colmap_seconds_per_photo=1.0),
    "A100": DeviceSpeed(seconds_per_step=0.035, rays_per_second=1_600_000,
                        colmap_seconds_per_photo=1.0),
}
# Rendering only pays for pixels inside the product's projected volume.
_COVERED_FRACTION = 0.35
_FINALIZE_SECONDS_PER_FRAME = 0.02


@dataclass(frozen=True)
class Estimate:
    """Expected seconds per stage and what the job will cost."""

    stage_seconds: dict[str, float]
    cost_usd: Decimal
    device: str  # "cpu", "cuda" or a Modal GPU type
    gpu_type: str | None = None
    iterations: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(self.stage_seconds.values())


def local_device() -> str:
    """The device the local backend's engine will use, without importing torch here.

    NERF_DEVICE forces it (as in the engine); otherwise an NVIDIA device node means CUDA.
    """
    return forced_device() or ("cuda" if Path("/dev/nvidia0").exists() else "cpu")


def gpu_price_per_hour(gpu_type: str) -> Decimal:
    try:
        return GPU_PRICES_PER_HOUR[gpu_type]
    except KeyError:
        raise ValueError(
            f"Unknown GPU type {gpu_type!r}: choose one of {', '.join(GPU_PRICES_PER_HOUR)}."
        ) from None


def cost_of(gpu_seconds: float, gpu_type: str | None) -> Decimal:
    """Price of `gpu_seconds` on `gpu_type` (0 when no paid GPU is used)."""
    if not gpu_type or gpu_seconds <= 0:
        return Decimal("0")
    cost = gpu_price_per_hour(gpu_type) * Decimal(str(gpu_seconds)) / Decimal(3600)
    return cost.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def stage_log_cost(stage_log: list[dict], default_gpu: str | None = None) -> Decimal:
    """What the job's successful stage runs cost, each at the GPU it actually ran on
    (`default_gpu` for entries that do not say)."""
    return sum((cost_of(float(entry.get("gpu_seconds") or 0.0),
                        entry.get("gpu_type") or default_gpu)
                for entry in stage_log if entry.get("outcome") == "succeeded"),
               Decimal("0"))


def estimate(
    *,
    backend: str,
    preset: str,
    photo_count: int,
    frame_count: int,
    frame_size: int,
    frame_rows: int = 1,
    iterations: int | None = None,
    gpu_type: str | None = None,
    stages: tuple[str, ...] = STAGE_NAMES,
) -> Estimate:
    """Seconds per stage and cost for a job with these settings.

    On the local backend the job costs nothing; on Modal, training and rendering are
    billed at `gpu_type`'s price (poses run on CPU cores, which cost cents per hour and
    are left out).
    """
    if backend == "local":
        device, paid_gpu = local_device(), None
    else:
        device = paid_gpu = gpu_type or DEFAULT_GPU
        gpu_price_per_hour(paid_gpu)  # unknown types fail here, with the choices
    chosen = get_preset(preset, "cuda" if device != "cpu" else "cpu")
    steps = iterations or chosen.iterations
    speed = SPEEDS[device]
    photos = min(photo_count, chosen.max_photos) if chosen.max_photos else photo_count
    frames = frame_count * max(frame_rows, 1)
    seconds = {
        "colmap": photo_count * speed.colmap_seconds_per_photo,
        "train": steps * speed.seconds_per_step * chosen.rays_per_batch / speed.reference_rays,
        "render": frames * frame_size * frame_size * _COVERED_FRACTION / speed.rays_per_second,
        "finalize": frames * _FINALIZE_SECONDS_PER_FRAME,
    }
    seconds = {
        stage: round(value + STAGES[stage].overhead_s, 1)
        for stage, value in seconds.items() if stage in stages
    }
    gpu_seconds = sum(seconds.get(stage, 0.0) for stage in GPU_STAGES)
    notes = [] if photos == photo_count else [f"trains on {photos} of {photo_count} photos"]
    return Estimate(stage_seconds=seconds, cost_usd=cost_of(gpu_seconds, paid_gpu),
                    device=device, gpu_type=paid_gpu, iterations=steps, notes=notes)
