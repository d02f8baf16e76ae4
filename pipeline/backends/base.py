"""The one interface between the worker and wherever the engine runs.

The worker (pipeline.jobs.tasks) never touches a workspace itself: it asks a backend to put
the photos there, start an engine stage, watch it, stop it, and bring results home.
`LocalBackend` runs stages as subprocesses on this machine; `ModalBackend` runs them as
Modal functions on GPUs, with the workspace on the `nerf-data` volume. Both see the same
workspace layout (pipeline.engine.workspace) and the same progress.json.

A started stage is described by a small JSON-able dict, its *handle* (a pid and process
group locally, a FunctionCall id on Modal). The worker keeps it in Job.backend_state so a
later worker, or a cancel from the web process, can find the stage again.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any


class StageStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The stage is gone without a result: killed, timed out, or its handle is stale
    # (e.g. the machine restarted).
    LOST = "lost"


@dataclass(frozen=True)
class StageResult:
    """What `poll` tells about a started stage."""

    status: StageStatus
    exit_code: int | None = None
    # The engine's one-line reason on failure (from progress.json or its stderr).
    error: str = ""
    # Backend-measured seconds the stage has used (for cost); None when unknown.
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status != StageStatus.RUNNING


class BackendError(Exception):
    """The backend itself cannot do what was asked (not the engine failing a stage).

    The message is shown to the user on the Job, so it says what to do, e.g. "Modal
    credentials are missing: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET".
    """


class Backend(abc.ABC):
    """Runs engine stages for jobs. Every method takes the job id (a UUID string).

    Methods must be safe to call from another process than the one that started the
    stage (the web process cancels; a new worker recovers), using only the handle.
    """

    name: str = ""

    # -- workspace ----------------------------------------------------------------------
    @abc.abstractmethod
    def prepare(self, job_id: str, images_zip: Path) -> None:
        """Put `images_zip` into the job's workspace as images.zip (replacing any)."""

    @abc.abstractmethod
    def has_outputs(self, job_id: str, stage: str) -> bool:
        """True when the workspace holds what `stage` produces (its `outputs` in
        pipeline.engine.catalogue.STAGES)."""

    @abc.abstractmethod
    def workspace_exists(self, job_id: str) -> bool: ...

    # -- stages -------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self, job_id: str, stage: str, args: list[str], *, time_limit: float,
              gpu_type: str | None = None) -> dict[str, Any]:
        """Start `python -m pipeline.engine STAGE --workspace WS *args`; do not wait.

        `args` are the stage's options without --workspace (the backend adds its own
        path). Returns the handle (JSON-able) to keep in Job.backend_state. The backend
        enforces `time_limit` seconds: past it, `poll` reports LOST and the stage is
        stopped.
        """

    @abc.abstractmethod
    def poll(self, job_id: str, handle: dict[str, Any]) -> StageResult:
        """The stage's state now. Never blocks for long."""

    @abc.abstractmethod
    def read_progress(self, job_id: str) -> dict[str, Any] | None:
        """The workspace's progress.json (schema: pipeline.engine.progress), or None."""

    @abc.abstractmethod
    def cancel(self, job_id: str, handle: dict[str, Any]) -> None:
        """Stop the stage and everything it started; idempotent; returns once it is gone
        (or after a short grace period)."""

    # -- results ------------------------------------------------------------------------
    @abc.abstractmethod
    def collect_frames(self, job_id: str, dest: Path) -> Path:
        """Copy WS/frames/ (batch_XX.zip and manifest.json) into `dest`; return the
        copied manifest.json."""

    @abc.abstractmethod
    def collect_comparison(self, job_id: str, dest: Path) -> Path | None:
        """Copy the files of WS/frames/compare/ (the photos beside their renders and
        compare.json) into `dest`; return the copied compare.json, or None when the render
        stage made no comparison. They hold cut-outs of private photos: `dest` must not be
        a public folder."""

    @abc.abstractmethod
    def collect_model(self, job_id: str, dest: Path) -> None:
        """Copy the workspace's MODEL_FILES (pipeline.engine.workspace) into `dest`
        (same relative paths)."""

    @abc.abstractmethod
    def restore_model(self, job_id: str, src: Path) -> None:
        """Put a model kept by `collect_model` into the job's workspace, for `render`."""

    @abc.abstractmethod
    def cleanup(self, job_id: str) -> bool:
        """Delete the job's workspace; True when something was deleted."""

    def list_workspaces(self) -> list[str]:
        """Job ids that have a workspace (for the cleanup schedule). Optional."""
        return []

    def workspace_changed_at(self, job_id: str) -> float | None:
        """When the job's workspace last changed (Unix time), for the cleanup schedule to
        judge a workspace whose job is gone; None when unknown (it is then kept)."""
        return None


_BACKENDS = {
    "local": "pipeline.backends.local.LocalBackend",
    "modal": "pipeline.backends.modal.ModalBackend",
}


def get_backend(name: str) -> Backend:
    """The backend called `name` ("local" or "modal"), configured from settings."""
    try:
        dotted = _BACKENDS[name]
    except KeyError:
        raise BackendError(f"Unknown engine backend {name!r}: use 'local' or 'modal'.") from None
    module, _, cls = dotted.rpartition(".")
    return getattr(import_module(module), cls)()
