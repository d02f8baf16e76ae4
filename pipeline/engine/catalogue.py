"""One catalogue of what a job can use: its stages, the Modal GPUs with their prices, the
Modal function that runs each stage, and the presets (pipeline.engine.presets, keyed by
name and device). Django-free, so the Modal app, the backends, the estimates and the forms
all read the same entries.

Prices are Modal's per-hour GPU prices from DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .presets import (
    DEFAULT_FILL_PERCENT,
    DEFAULT_PRESET,
    MAX_FILL_PERCENT,
    MIN_FILL_PERCENT,
    PRESET_NAMES,
    PRESETS,
    Preset,
    get_preset,
)

__all__ = ["DEFAULT_FILL_PERCENT", "DEFAULT_GPU", "DEFAULT_PRESET", "ENGINE_STAGES",
           "GPU_FALLBACK", "GPUS", "JOB_STAGES", "MAX_FILL_PERCENT", "MIN_FILL_PERCENT",
           "PRESETS", "PRESET_NAMES", "STAGE_FUNCTIONS", "STAGE_WEIGHTS", "VOLUME_NAME", "Gpu",
           "Preset", "get_preset"]

# The engine's stages, then the worker's own last stage that publishes the frames.
ENGINE_STAGES = ("colmap", "train", "render")
JOB_STAGES = (*ENGINE_STAGES, "finalize")

# Share of the overall progress bar each stage takes.
STAGE_WEIGHTS: dict[str, float] = {"colmap": 0.10, "train": 0.60, "render": 0.25,
                                   "finalize": 0.05}

# The Modal volume that holds the job workspaces.
VOLUME_NAME = "nerf-data"

# The Modal function that runs each engine stage (pipeline/modal_app.py defines them; the
# Modal backend looks them up by these names).
STAGE_FUNCTIONS: dict[str, str] = {"colmap": "process_colmap", "train": "train_nerf",
                                   "render": "render_frames"}


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: int
    price_per_hour: Decimal
    """US dollars per hour of GPU time."""


# Cheapest first: also Modal's fallback order when the asked-for type is short.
GPUS: dict[str, Gpu] = {gpu.name: gpu for gpu in (
    Gpu("T4", 16, Decimal("0.35")),
    Gpu("A10G", 24, Decimal("1.10")),
    Gpu("A100", 40, Decimal("4.00")),
)}
GPU_FALLBACK = tuple(GPUS)
# The GPU a Modal estimate assumes when none is named (GPU_TYPE_DEV's default).
DEFAULT_GPU = "T4"
