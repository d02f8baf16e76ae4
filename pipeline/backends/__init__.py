"""Where engine stages run: on this machine (local) or on Modal's GPUs (modal)."""

from .base import (
    ENGINE_STAGES,
    MODEL_FILES,
    STAGE_OUTPUTS,
    Backend,
    BackendError,
    StageResult,
    StageStatus,
    get_backend,
)

__all__ = [
    "ENGINE_STAGES", "MODEL_FILES", "STAGE_OUTPUTS", "Backend", "BackendError",
    "StageResult", "StageStatus", "get_backend",
]
