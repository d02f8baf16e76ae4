"""LocalBackend: engine stages as subprocesses on the worker's own machine.

Each stage is `python -m pipeline.engine STAGE --workspace WS …` in its own session (so
its own process group): an engine crash cannot take the worker down, and a cancel stops
the stage with everything it started (nerfstudio's data loader workers too). The handle
records pid, process group, host and deadline, so a later worker or the web process can
find, time out or stop a stage whose parent is gone. A stage dies with the process that
started it (pipeline.engine.lifeline), so a worker killed mid-stage leaves none behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings

from pipeline.engine import workspace as layout
from pipeline.engine.catalogue import STAGES
from pipeline.engine.lifeline import PARENT_PID_ENV
from pipeline.engine.progress import read_progress

from .base import (
    Backend,
    BackendError,
    StageResult,
    StageStatus,
)

# Seconds a stopped stage gets to exit after SIGTERM before SIGKILL.
TERM_GRACE_S = 5.0


class LocalBackend(Backend):
    name = "local"
    # Stages this process started, by pid: only a parent can read an exit code.
    _children: ClassVar[dict[int, subprocess.Popen]] = {}

    def __init__(self, data_root: Path | None = None) -> None:
        self.jobs_root = Path(data_root or settings.NERF_DATA_ROOT) / layout.JOBS_DIR

    # -- workspace ----------------------------------------------------------------------
    def workspace(self, job_id: str) -> Path:
        """jobs/{job_id}; the id must be a UUID, so no other text reaches the path."""
        return self.jobs_root / str(uuid.UUID(str(job_id)))

    def prepare(self, job_id: str, images_zip: Path) -> None:
        ws = self.workspace(job_id)
        ws.mkdir(parents=True, exist_ok=True)
        tmp = ws / f".{layout.IMAGES_ZIP}.tmp"
        shutil.copyfile(images_zip, tmp)
        os.replace(tmp, ws / layout.IMAGES_ZIP)

    def has_outputs(self, job_id: str, stage: str) -> bool:
        ws = self.workspace(job_id)
        return all((ws / rel).exists() for rel in STAGES[stage].outputs)

    def workspace_exists(self, job_id: str) -> bool:
        return self.workspace(job_id).is_dir()

    def workspace_changed_at(self, job_id: str) -> float | None:
        # The folder's own time moves whenever progress.json is replaced (a rename).
        try:
            return self.workspace(job_id).stat().st_mtime
        except FileNotFoundError:
            return None

    def list_workspaces(self) -> list[str]:
        if not self.jobs_root.is_dir():
            return []
        found = []
        for path in self.jobs_root.iterdir():
            try:
                found.append(str(uuid.UUID(path.name)))
            except ValueError:
                continue
        return found

    # -- stages -------------------------------------------------------------------------
    def start(self, job_id: str, stage: str, args: list[str], *, time_limit: float,
              gpu_type: str | None = None) -> dict[str, Any]:
        ws = self.workspace(job_id)
        logs = ws / layout.LOGS_DIR
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{stage}.log"
        cmd = [sys.executable, "-m", "pipeline.engine", stage, "--workspace", str(ws), *args]
        # The stage binds itself to this process at its start (a preexec_fn would be unsafe
        # beside the worker's threads). Strictly, to the thread calling start: the worker's
        # main thread, which waits for the stage.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())}
        with log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    cmd, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                raise BackendError(f"Could not start the {stage} stage: {exc}.") from exc
        self._children[proc.pid] = proc
        now = time.time()
        return {"backend": self.name, "stage": stage, "pid": proc.pid, "pgid": proc.pid,
                "host": socket.gethostname(), "started": now, "deadline": now + time_limit,
                "time_limit": time_limit, "log": str(log_path.relative_to(ws))}

    def poll(self, job_id: str, handle: dict[str, Any]) -> StageResult:
        stage, pid = handle["stage"], int(handle["pid"])
        seconds = time.time() - float(handle["started"])
        proc = self._children.get(pid)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return self._running_or_timed_out(job_id, handle, seconds)
            self._children.pop(pid, None)
            if code == 0:
                return StageResult(StageStatus.SUCCEEDED, 0, seconds=seconds)
            return StageResult(StageStatus.FAILED, code, self._engine_error(job_id, handle, code),
                               seconds=seconds)
        # Not our child (another worker started it): judge by the process and the file.
        if self._alive(job_id, handle):
            return self._running_or_timed_out(job_id, handle, seconds)
        doc = self._stage_progress(job_id, handle)
        if doc and doc.get("status") == "succeeded":
            return StageResult(StageStatus.SUCCEEDED, seconds=seconds)
        if doc and doc.get("status") == "failed":
            return StageResult(StageStatus.FAILED, error=doc.get("error") or "",
                               seconds=seconds)
        return StageResult(StageStatus.LOST, error=f"The {stage} stage stopped without a "
                           "result (its process is gone).", seconds=seconds)

    def read_progress(self, job_id: str) -> dict[str, Any] | None:
        return read_progress(self.workspace(job_id) / layout.PROGRESS_JSON)

    def cancel(self, job_id: str, handle: dict[str, Any]) -> None:
        if not handle or handle.get("host") != socket.gethostname():
            return  # a stage on another machine: its own worker stops it
        pid, pgid = int(handle["pid"]), int(handle["pgid"])
        proc = self._children.get(pid)
        if proc is None and not _engine_group_alive(pgid, self.workspace(job_id)):
            return
        self._signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()  # reap the leader, or its zombie keeps the group alive
            if not self._group_exists(pgid):
                break
            time.sleep(0.1)
        else:
            self._signal_group(pgid, signal.SIGKILL)
            if proc is not None:
                proc.wait(timeout=10)
        self._children.pop(pid, None)

    # -- results ------------------------------------------------------------------------
    def collect_frames(self, job_id: str, dest: Path) -> Path:
        frames = self.workspace(job_id) / layout.FRAMES_DIR
        manifest = frames / layout.MANIFEST_NAME
        if not manifest.exists():
            raise BackendError("The render stage left no frames/manifest.json; retry the job.")
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(frames.glob(layout.BATCH_GLOB)):
            shutil.copy2(path, dest / path.name)
        shutil.copy2(manifest, dest / layout.MANIFEST_NAME)
        return dest / layout.MANIFEST_NAME

    def collect_comparison(self, job_id: str, dest: Path) -> Path | None:
        compare = self.workspace(job_id) / layout.COMPARE_DIR
        if not (compare / layout.COMPARE_JSON).is_file():
            return None
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(compare.iterdir()):
            if path.is_file() and not path.is_symlink():
                shutil.copy2(path, dest / path.name)
        return dest / layout.COMPARE_JSON

    def collect_model(self, job_id: str, dest: Path) -> None:
        _copy_paths(self.workspace(job_id), dest, layout.MODEL_FILES)

    def restore_model(self, job_id: str, src: Path) -> None:
        ws = self.workspace(job_id)
        ws.mkdir(parents=True, exist_ok=True)
        _copy_paths(src, ws, layout.MODEL_FILES)

    def cleanup(self, job_id: str) -> bool:
        ws = self.workspace(job_id)
        if not ws.exists():
            return False
        shutil.rmtree(ws)
        return True

    # -- helpers ------------------------------------------------------------------------
    def _running_or_timed_out(self, job_id: str, handle: dict[str, Any],
                              seconds: float) -> StageResult:
        if time.time() <= float(handle["deadline"]):
            return StageResult(StageStatus.RUNNING, seconds=seconds)
        self.cancel(job_id, handle)
        limit = float(handle.get("time_limit") or 0)
        return StageResult(StageStatus.LOST, error=(
            f"The {handle['stage']} stage took longer than its limit of {limit / 60:.0f} "
            "minutes and was stopped. Try a lighter preset or fewer, smaller frames."),
            seconds=seconds)

    def _stage_progress(self, job_id: str, handle: dict[str, Any]) -> dict[str, Any] | None:
        """progress.json when it was written by this run of this stage."""
        doc = self.read_progress(job_id)
        if not doc or doc.get("stage") != handle["stage"] or doc.get("pid") != handle["pid"]:
            return None
        return doc

    def _engine_error(self, job_id: str, handle: dict[str, Any], code: int) -> str:
        doc = self._stage_progress(job_id, handle)
        if doc and doc.get("error"):
            return str(doc["error"])
        for line in reversed(self._log_tail(job_id, handle)):
            if line.startswith("error: "):
                return line.removeprefix("error: ").strip()
        if code < 0:
            return (f"The {handle['stage']} stage was killed (signal {-code}); the machine "
                    "may have run out of memory. Retry, or use a lighter preset.")
        return f"The {handle['stage']} stage failed (exit code {code}); see its log."

    def _log_tail(self, job_id: str, handle: dict[str, Any]) -> list[str]:
        default = f"{layout.LOGS_DIR}/{handle['stage']}.log"
        path = self.workspace(job_id) / handle.get("log", default)
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 8192))
                return fh.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def _alive(self, job_id: str, handle: dict[str, Any]) -> bool:
        """The stage's leader process still runs (same host, and it is really that stage,
        not a new process that reused the pid)."""
        if handle.get("host") != socket.gethostname():
            return False
        try:
            cmdline = Path(f"/proc/{int(handle['pid'])}/cmdline").read_bytes()
        except OSError:
            return False
        stat = Path(f"/proc/{int(handle['pid'])}/stat").read_text(errors="replace")
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # exited, not yet reaped
            return False
        return b"pipeline.engine" in cmdline and str(self.workspace(job_id)).encode() in cmdline

    @staticmethod
    def _group_exists(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)


def _engine_group_alive(pgid: int, ws: Path) -> bool:
    """Some live process of process group `pgid` is an engine stage on workspace `ws`
    (checked by command line, so a reused pid is never mistaken for the stage)."""
    marker = str(ws).encode()
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            stat = (proc_dir / "stat").read_text(errors="replace").rsplit(")", 1)[-1].split()
            if stat[0] == "Z" or int(stat[2]) != pgid:
                continue
            cmdline = (proc_dir / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if marker in cmdline or b"pipeline.engine" in cmdline or b"multiprocessing" in cmdline:
            return True
    return False


def _copy_paths(src_root: Path, dest_root: Path, relpaths: tuple[str, ...]) -> None:
    """Copy files or folders `relpaths` from src_root to dest_root, replacing them."""
    missing = [rel for rel in relpaths if not (src_root / rel).exists()]
    if missing:
        raise BackendError(f"The trained model is incomplete (missing {', '.join(missing)}); "
                           "train again.")
    for rel in relpaths:
        src, dest = src_root / rel, dest_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        else:
            shutil.copy2(src, dest)
