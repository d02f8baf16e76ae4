"""One catalogue of what a job can use: its stages, the Modal GPUs with their prices, the
Modal function that runs each stage, and the presets (pipeline.engine.presets, keyed by
name and device). Django-free, so the Modal app, the backends, the estimates and the forms
all read the same entries.

Prices are Modal's per-hour GPU prices from DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import workspace
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
           "GPU_FALLBACK", "GPUS", "GPU_STAGES", "MAX_FILL_PERCENT", "MIN_FILL_PERCENT",
           "PRESETS", "PRESET_NAMES", "RERENDER_STAGES", "STAGES", "STAGE_FUNCTIONS",
           "STAGE_NAMES", "STAGE_WEIGHTS", "VOLUME_NAME", "Gpu", "Preset", "Stage",
           "get_preset"]


@dataclass(frozen=True)
class Stage:
    """One stage of a job. The only place a stage is named: the Job's stage choices, the
    worker, the backends, the estimates, the time limits and the Modal app read these."""

    name: str
    label: str
    """How pages name the stage (Job.Stage's label)."""
    message: str
    """The job's message while the stage starts."""
    weight: float
    """Share of the overall progress bar."""
    overhead_s: float
    """Seconds an estimate adds for process start, model load and writing results."""
    outputs: tuple[str, ...] = ()
    """Workspace paths (pipeline.engine.workspace) that prove the stage has finished; a
    retry or a re-render reuses a stage whose outputs are there."""
    modal_function: str | None = None
    """The Modal function that runs it (pipeline/modal_app.py); None: the worker itself
    runs the stage (finalize)."""
    modal_timeout_s: int | None = None
    """Modal's hard ceiling on the function, above the worker's own time limit."""
    time_limit_s: int | None = None
    """Default seconds the worker lets it run (settings.JOB_STAGE_TIME_LIMITS, each
    overridden by JOB_<STAGE>_TIME_LIMIT)."""
    gpu: bool = False
    """Billed as GPU time on Modal (poses run on CPU cores)."""
    summary: str = ""
    """What `POST /api/nerf/{name}` does (the API docs); empty: no such endpoint."""

    @property
    def in_engine(self) -> bool:
        """Run by the engine through a backend, not by the worker itself."""
        return self.modal_function is not None


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("colmap", "Camera poses", "Finding where each photo was taken.", weight=0.10,
          overhead_s=10.0,
          outputs=(workspace.TRANSFORMS_JSON, workspace.OBJECT_JSON),
          modal_function="process_colmap", modal_timeout_s=60 * 60, time_limit_s=3600,
          summary="Find the camera poses of an existing job's photos (COLMAP) and stop."),
    # 15k nerfacto steps take ~25 min on a T4; `high` (30k steps, 8k rays) about four
    # times that: hence Modal's 4 h.
    Stage("train", "Training", "Training the NeRF.", weight=0.60, overhead_s=20.0,
          outputs=(workspace.NERF_CONFIG, workspace.TRAIN_JSON),
          modal_function="train_nerf", modal_timeout_s=4 * 60 * 60,
          time_limit_s=3 * 3600, gpu=True,
          summary="Train the NeRF of a job whose poses are done, and stop."),
    Stage("render", "Frames", "Rendering the frames.", weight=0.25, overhead_s=15.0,
          outputs=(workspace.MANIFEST_JSON,),
          modal_function="render_frames", modal_timeout_s=2 * 60 * 60,
          time_limit_s=90 * 60, gpu=True,
          summary="Render (and publish) the frames of a job whose model is trained."),
    Stage("finalize", "Finishing", "Preparing the frames.", weight=0.05, overhead_s=2.0),
)}
# Views of the one registry above, in the stages' order.
STAGE_NAMES: tuple[str, ...] = tuple(STAGES)
ENGINE_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES.values() if s.in_engine)
STAGE_WEIGHTS: dict[str, float] = {s.name: s.weight for s in STAGES.values()}
STAGE_FUNCTIONS: dict[str, str] = {s.name: s.modal_function for s in STAGES.values()
                                   if s.modal_function}
GPU_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES.values() if s.gpu)
# A re-render of a kept model skips poses and training.
RERENDER_STAGES: tuple[str, ...] = STAGE_NAMES[STAGE_NAMES.index("render"):]

# The Modal volume that holds the job workspaces.
VOLUME_NAME = "nerf-data"


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
