"""ModalBackend: engine stages as functions of the deployed Modal app, on Modal's GPUs.

The job's workspace lives on the Modal volume `nerf-data` (jobs/{job_id}/, the layout of
pipeline.engine.workspace). The worker uploads images.zip there, spawns the stage's
function by name from the deployed app (pipeline/modal_app.py), keeps the FunctionCall id
as the stage's handle, reads progress.json from the volume while the call runs, and
downloads the frames and the model when it is done. Nothing here contacts Modal until a
method needs it, so the site and the worker start (and the local backend works) without
Modal credentials; every Modal failure becomes a BackendError saying what to do.
"""

from __future__ import annotations

import builtins
import contextlib
import fnmatch
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, ClassVar

from django.conf import settings

from pipeline.engine import workspace as layout
from pipeline.engine.catalogue import GPU_STAGES, STAGE_FUNCTIONS, STAGES, VOLUME_NAME

from .base import (
    Backend,
    BackendError,
    StageResult,
    StageStatus,
)

log = logging.getLogger(__name__)


def _modal_sdk() -> ModuleType:
    """The Modal client library; tests hand ModalBackend a fake of it instead."""
    return import_module("modal")


class ModalBackend(Backend):
    name = "modal"
    # One authenticated client per process and token: django-q2 forks its workers, and a
    # client must not cross a fork.
    _clients: ClassVar[dict[tuple[int, str, str], Any]] = {}

    def __init__(self, sdk: Any | None = None) -> None:
        self.sdk = sdk if sdk is not None else _modal_sdk()
        self.errors = self.sdk.exception
        self.app_name = settings.MODAL_APP_NAME
        self.default_gpu = settings.GPU_TYPE
        self._volume: Any = None

    # -- connection ---------------------------------------------------------------------
    def client(self) -> Any:
        token_id, token_secret = settings.MODAL_TOKEN_ID, settings.MODAL_TOKEN_SECRET
        if not (token_id and token_secret):
            # `modal token new` keeps a token in ~/.modal.toml; use it when present.
            config = self.sdk.config.config
            token_id, token_secret = config.get("token_id"), config.get("token_secret")
        if not (token_id and token_secret):
            raise BackendError(
                "Modal credentials are missing: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET "
                "for the worker (create a token at modal.com → Settings → API Tokens, or "
                "run `modal token new`) and restart it, or set NERF_BACKEND=local to run "
                "jobs on this machine.")
        key = (os.getpid(), token_id, token_secret)
        if key not in self._clients:
            with self._modal_errors("connect to Modal"):
                self._clients[key] = self.sdk.Client.from_credentials(token_id, token_secret)
        return self._clients[key]

    def volume(self) -> Any:
        if self._volume is None:
            self._volume = self.sdk.Volume.from_name(VOLUME_NAME, create_if_missing=True,
                                                     client=self.client())
        return self._volume

    # -- workspace ----------------------------------------------------------------------
    def workspace(self, job_id: str) -> PurePosixPath:
        """jobs/{job_id} inside the volume; the id must be a UUID."""
        return PurePosixPath(layout.JOBS_DIR) / str(uuid.UUID(str(job_id)))

    def prepare(self, job_id: str, images_zip: Path) -> None:
        remote = self.workspace(job_id) / layout.IMAGES_ZIP
        with self._modal_errors("upload the photos to the Modal volume"), \
                self.volume().batch_upload(force=True) as batch:
            batch.put_file(Path(images_zip), f"/{remote}")

    def has_outputs(self, job_id: str, stage: str) -> bool:
        ws = self.workspace(job_id)
        return all(self._exists(ws / rel) for rel in STAGES[stage].outputs)

    def workspace_exists(self, job_id: str) -> bool:
        return self._exists(self.workspace(job_id))

    def workspace_changed_at(self, job_id: str) -> float | None:
        # The newest file inside: a folder's own time on the volume need not move when a
        # file in it is replaced.
        try:
            entries = self._listdir(self.workspace(job_id), recursive=True)
        except _Missing:
            return None
        return float(max((e.mtime for e in entries), default=0)) or None

    def list_workspaces(self) -> list[str]:
        try:
            entries = self._listdir(PurePosixPath(layout.JOBS_DIR))
        except BackendError as exc:  # cleanup is best effort; the site keeps working
            log.warning("cannot list the Modal volume's workspaces: %s", exc)
            return []
        found = []
        for entry in entries:
            try:
                found.append(str(uuid.UUID(_entry_path(entry).name)))
            except ValueError:
                continue
        return found

    # -- stages -------------------------------------------------------------------------
    def start(self, job_id: str, stage: str, args: list[str], *, time_limit: float,
              gpu_type: str | None = None) -> dict[str, Any]:
        try:
            function_name = STAGE_FUNCTIONS[stage]
        except KeyError:
            raise BackendError(f"Modal has no function for the {stage!r} stage.") from None
        job_id = str(uuid.UUID(str(job_id)))
        with self._modal_errors(f"start the {stage} stage", function=function_name):
            function = self.sdk.Function.from_name(self.app_name, function_name,
                                                   client=self.client())
            gpu = None
            # The deployed default keeps Modal's fallback list; another type is pinned.
            if stage in GPU_STAGES and gpu_type and gpu_type != self.default_gpu:
                function = function.with_options(gpu=gpu_type)
                gpu = gpu_type
            call = function.spawn(job_id, [str(a) for a in args])
        now = time.time()
        return {"backend": self.name, "stage": stage, "app": self.app_name,
                "function": function_name, "call_id": call.object_id, "gpu": gpu,
                "started": now, "deadline": now + time_limit, "time_limit": time_limit}

    def poll(self, job_id: str, handle: dict[str, Any]) -> StageResult:
        stage = handle["stage"]
        elapsed = time.time() - float(handle["started"])
        errors = self.errors
        try:
            with self._modal_errors(f"check the {stage} stage", remote_ok=True):
                result = self._call(handle).get(timeout=0)
        except builtins.TimeoutError:  # no output yet: still running
            if time.time() <= float(handle["deadline"]):
                return StageResult(StageStatus.RUNNING, seconds=elapsed)
            self.cancel(job_id, handle)
            return StageResult(StageStatus.LOST, error=self._too_long(handle), seconds=elapsed)
        except errors.FunctionTimeoutError:
            return StageResult(StageStatus.LOST, error=self._too_long(handle), seconds=elapsed)
        except errors.OutputExpiredError:
            return StageResult(StageStatus.LOST, error=(
                f"Modal no longer holds the result of the {stage} stage; retry the job."),
                seconds=elapsed)
        except errors.InputCancellation:
            return StageResult(StageStatus.LOST, error=f"The {stage} stage was cancelled.",
                               seconds=elapsed)
        except _RemoteFailure as exc:  # the function itself raised (it returns engine errors)
            return StageResult(StageStatus.FAILED, error=(
                f"The {stage} stage failed on Modal: {exc.__cause__!r}. Retry the job; if it "
                "fails again, see the function's logs on modal.com."), seconds=elapsed)
        if not isinstance(result, dict) or "exit_code" not in result:
            return StageResult(StageStatus.FAILED, error=(
                f"The {stage} stage returned {result!r} instead of its summary: the deployed "
                f"app {self.app_name!r} is out of date; deploy it again."), seconds=elapsed)
        seconds = float(result.get("seconds") or elapsed)
        extra = {"gpu": result.get("gpu"), "message": result.get("message") or ""}
        if result["exit_code"] == 0:
            return StageResult(StageStatus.SUCCEEDED, 0, seconds=seconds, extra=extra)
        return StageResult(StageStatus.FAILED, int(result["exit_code"]),
                           result.get("error") or f"The {stage} stage failed.",
                           seconds=seconds, extra=extra)

    def read_progress(self, job_id: str) -> dict[str, Any] | None:
        data = self._read(self.workspace(job_id) / layout.PROGRESS_JSON)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def cancel(self, job_id: str, handle: dict[str, Any]) -> None:
        if not handle or not handle.get("call_id"):
            return
        # Terminating the container stops the GPU bill at once; the call is not retried.
        with self._modal_errors(f"cancel the {handle.get('stage')} stage"):
            self._call(handle).cancel(terminate_containers=True)

    # -- results ------------------------------------------------------------------------
    def collect_frames(self, job_id: str, dest: Path) -> Path:
        frames = self.workspace(job_id) / layout.FRAMES_DIR
        manifest = self._read(frames / layout.MANIFEST_NAME)
        if manifest is None:
            raise BackendError("The render stage left no frames/manifest.json; retry the job.")
        dest.mkdir(parents=True, exist_ok=True)
        for entry in self._listdir(frames):
            name = _entry_path(entry).name
            if fnmatch.fnmatchcase(name, layout.BATCH_GLOB):
                self._download(frames / name, dest / name)
        (dest / layout.MANIFEST_NAME).write_bytes(manifest)
        return dest / layout.MANIFEST_NAME

    def collect_comparison(self, job_id: str, dest: Path) -> Path | None:
        compare = self.workspace(job_id) / layout.COMPARE_DIR
        doc = self._read(compare / layout.COMPARE_JSON)
        if doc is None:
            return None
        dest.mkdir(parents=True, exist_ok=True)
        file = self.sdk.types.FileEntryType.FILE
        for entry in self._listdir(compare):
            name = _entry_path(entry).name
            if entry.type == file and name != layout.COMPARE_JSON and not name.startswith("."):
                self._download(compare / name, dest / name)
        # Written last: a compare.json in `dest` means its images are there too.
        (dest / layout.COMPARE_JSON).write_bytes(doc)
        return dest / layout.COMPARE_JSON

    def collect_model(self, job_id: str, dest: Path) -> None:
        ws = self.workspace(job_id)
        found = {rel: self._entry(ws / rel) for rel in layout.MODEL_FILES}
        missing = [rel for rel, entry in found.items() if entry is None]
        if missing:
            raise BackendError(f"The trained model is incomplete (missing "
                               f"{', '.join(missing)}); train again.")
        directory, file = self.sdk.types.FileEntryType.DIRECTORY, self.sdk.types.FileEntryType.FILE
        for rel, entry in found.items():
            entries = self._listdir(ws / rel, recursive=True) if entry.type == directory \
                else [entry]
            for item in entries:
                if item.type == file:
                    relative = _entry_path(item).relative_to(ws)
                    self._download(ws / relative, dest / relative)

    def restore_model(self, job_id: str, src: Path) -> None:
        ws = self.workspace(job_id)
        missing = [rel for rel in layout.MODEL_FILES if not (src / rel).exists()]
        if missing:
            raise BackendError(f"The trained model is incomplete (missing "
                               f"{', '.join(missing)}); train again.")
        with self._modal_errors("upload the trained model to the Modal volume"), \
                self.volume().batch_upload(force=True) as batch:
            for rel in layout.MODEL_FILES:
                local = src / rel
                if local.is_dir():
                    batch.put_directory(local, f"/{ws / rel}")
                else:
                    batch.put_file(local, f"/{ws / rel}")

    def cleanup(self, job_id: str) -> bool:
        try:
            with self._modal_errors("delete the workspace on the Modal volume"):
                self.volume().remove_file(f"/{self.workspace(job_id)}", recursive=True)
        except _Missing:
            return False
        return True

    # -- volume helpers -----------------------------------------------------------------
    def _exists(self, path: PurePosixPath) -> bool:
        return self._entry(path) is not None

    def _entry(self, path: PurePosixPath) -> Any | None:
        """The volume's FileEntry for `path` (from its parent's listing), or None."""
        try:
            entries = self._listdir(path.parent)
        except _Missing:
            return None
        return next((e for e in entries if _entry_path(e).name == path.name), None)

    def _listdir(self, path: PurePosixPath, recursive: bool = False) -> list[Any]:
        with self._modal_errors("read the Modal volume"):
            return list(self.volume().listdir(f"/{path}", recursive=recursive))

    def _read(self, path: PurePosixPath) -> bytes | None:
        try:
            with self._modal_errors("read the Modal volume"):
                return b"".join(self.volume().read_file(f"/{path}"))
        except _Missing:
            return None

    def _download(self, path: PurePosixPath, dest: Path) -> None:
        """Stream a volume file to `dest` (through a temporary name: no half files)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        try:
            with self._modal_errors("download from the Modal volume"), tmp.open("wb") as fh:
                for chunk in self.volume().read_file(f"/{path}"):
                    fh.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _call(self, handle: dict[str, Any]) -> Any:
        return self.sdk.FunctionCall.from_id(handle["call_id"], client=self.client())

    @staticmethod
    def _too_long(handle: dict[str, Any]) -> str:
        limit = float(handle.get("time_limit") or 0)
        return (f"The {handle['stage']} stage took longer than its limit of {limit / 60:.0f} "
                "minutes and was stopped. Try a lighter preset or fewer, smaller frames.")

    @contextlib.contextmanager
    def _modal_errors(self, doing: str, *, function: str | None = None,
                      remote_ok: bool = False) -> Iterator[None]:
        """Turn the Modal library's exceptions into BackendErrors that say what to do.

        A missing volume path raises _Missing. With `remote_ok`, exceptions that a function
        call's result re-raises pass through (timeouts, cancellation) or become
        _RemoteFailure (anything the function itself raised).
        """
        errors, app = self.errors, self.app_name
        passthrough = (BackendError, builtins.TimeoutError, errors.FunctionTimeoutError,
                       errors.OutputExpiredError, errors.InputCancellation) if remote_ok \
            else (BackendError,)
        try:
            yield
        except passthrough:
            raise
        except (errors.AuthError, errors.PermissionDeniedError) as exc:
            raise BackendError(
                f"Modal refused the credentials while trying to {doing}: check "
                "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (create a new token with `modal token "
                "new` or at modal.com → Settings → API Tokens) and restart the worker."
            ) from exc
        except errors.NotFoundError as exc:
            if function:
                raise BackendError(
                    f"The Modal app {app!r} is not deployed (or has no function "
                    f"{function!r}): deploy it with `ENVIRONMENT={settings.ENVIRONMENT} modal "
                    f"deploy pipeline/modal_app.py --name {app}`, then retry the job.") from exc
            if remote_ok:
                raise BackendError(f"Modal no longer knows the call to {doing} ({exc}); "
                                   "retry the job.") from exc
            raise _Missing(str(exc)) from exc
        except FileNotFoundError as exc:
            raise _Missing(str(exc)) from exc
        except (errors.ConnectionError, ConnectionError) as exc:
            raise BackendError(f"Could not reach Modal to {doing} ({exc}); check the worker's "
                               "network connection and retry the job.") from exc
        except Exception as exc:
            if remote_ok:
                raise _RemoteFailure(str(exc)) from exc
            if isinstance(exc, errors.Error):
                raise BackendError(f"Modal could not {doing}: {exc}. Retry the job; if it "
                                   "happens again, check the app on modal.com.") from exc
            raise


def _entry_path(entry: Any) -> PurePosixPath:
    """A volume listing entry's path, relative to the volume's root."""
    return PurePosixPath(entry.path.lstrip("/"))


class _Missing(BackendError):
    """The volume path does not exist."""


class _RemoteFailure(Exception):
    """The stage's function raised (the original exception is the __cause__)."""
