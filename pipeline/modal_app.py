"""The Modal app: the engine's stages as functions on Modal's serverless GPUs.

Each function is a thin wrapper over the engine's command line (pipeline.engine.cli), the
very code the local backend runs in a subprocess: it reloads the `nerf-data` volume, runs
the stage on the job's workspace there (/volumes/nerf-data/jobs/{job_id}), commits the
volume every few seconds while the stage runs (so the worker sees progress.json) and once
more at the end, and returns a small summary. The worker (pipeline.backends.modal) spawns
these functions by name from the deployed app and reads results from the volume.

    ENVIRONMENT=development modal deploy pipeline/modal_app.py --name nerf-dev
    ENVIRONMENT=production  modal deploy pipeline/modal_app.py --name nerf-prod
    modal run pipeline/modal_app.py          # runs health_check on a GPU

This module reads its configuration from the environment at import (deploy) time and
imports nothing from Django: it is loaded by the Modal CLI and inside the containers. Its
stages, GPUs and volume are the engine catalogue's (pipeline.engine.catalogue), which
travels into the image with the rest of the engine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import modal

try:
    from pipeline.engine import catalogue
    from pipeline.engine import workspace as layout
except ModuleNotFoundError:
    # `modal deploy pipeline/modal_app.py` puts only pipeline/ on sys.path: add the folder
    # above it, where the package is (inside a container /root already holds it).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pipeline.engine import catalogue
    from pipeline.engine import workspace as layout

log = logging.getLogger(__name__)

ENVIRONMENT = os.environ.get("ENVIRONMENT", "development").strip().lower()
PRODUCTION = ENVIRONMENT == "production"
APP_NAME = os.environ.get("MODAL_APP_NAME", "").strip() or (
    "nerf-prod" if PRODUCTION else "nerf-dev")

VOLUME_NAME = catalogue.VOLUME_NAME
VOLUME_MOUNT = "/volumes/nerf-data"
# Where the functions find the volume; tests point it at a temporary folder.
VOLUME_ROOT = Path(VOLUME_MOUNT)

# Modal's own fallback order, cheapest first. A function asks for the environment's GPU
# and lets Modal fall back to the bigger ones when that type is short.
GPU_FALLBACK = catalogue.GPU_FALLBACK


def gpu_candidates(first: str) -> list[str]:
    """The fallback list starting at `first`, e.g. "A10G" -> ["A10G", "A100"]."""
    name = first.strip().upper()
    if name not in GPU_FALLBACK:
        raise ValueError(f"Unknown GPU type {first!r} for the Modal app: choose one of "
                         f"{', '.join(GPU_FALLBACK)} (GPU_TYPE_DEV / GPU_TYPE_PROD).")
    return list(GPU_FALLBACK[GPU_FALLBACK.index(name):])


DEFAULT_GPU = (os.environ.get("GPU_TYPE_PROD", "A10G") if PRODUCTION
               else os.environ.get("GPU_TYPE_DEV", "T4")).strip().upper()
GPUS = gpu_candidates(DEFAULT_GPU)

# The stage each function runs, by function name (the worker looks them up by these).
STAGE_FUNCTIONS = catalogue.STAGE_FUNCTIONS

# Hard ceilings per stage, in seconds, above the worker's own per-job limits (settings
# JOB_*_TIME_LIMIT), which the backend enforces by cancelling the call (the catalogue's
# modal_timeout_s).
TIMEOUTS = {"health_check": 5 * 60, **{name: stage.modal_timeout_s
                                       for name, stage in catalogue.STAGES.items()
                                       if stage.modal_timeout_s}}
# Preemption (or a lost container) reruns the input; training then resumes from its last
# checkpoint on the volume. Engine failures are returned, not raised, so they never retry.
RETRIES = modal.Retries(max_retries=2, initial_delay=10.0, backoff_coefficient=2.0)
# How often a running stage's files (progress.json, checkpoints) are committed.
COMMIT_INTERVAL_S = 10.0

# The engine's Python dependencies, pinned as in pyproject.toml (a test checks they agree).
ENGINE_PACKAGES = ("torch==2.14.1", "torchvision==0.29.1", "nerfstudio==1.1.5",
                   "pycolmap>=4.2,<4.3", "numpy>=1.26,<2.3", "pillow>=10,<12", "tqdm>=4.66")
# nerfacto's fast hash grid. Built for T4 (75), A100 (80) and A10G (86); when the build
# fails the image still works and nerfstudio falls back to its slower PyTorch encoding
# (health_check reports which one is in use).
TCNN_SOURCE = "git+https://github.com/NVlabs/tiny-cuda-nn@v1.7#subdirectory=bindings/torch"
CUDA_BASE = "nvidia/cuda:13.0.1-devel-ubuntu22.04"  # torch 2.14.1's wheels are cu130

_PIPELINE_DIR = Path(__file__).resolve().parent

image = (
    modal.Image.from_registry(CUDA_BASE, add_python="3.11")
    .apt_install("git", "build-essential", "ninja-build", "libgl1", "libglib2.0-0")
    .pip_install(*ENGINE_PACKAGES)
    .run_commands(
        f"pip install --no-build-isolation '{TCNN_SOURCE}' || echo 'tiny-cuda-nn did not "
        "build: nerfacto will use its PyTorch hash grid'",
        env={"TCNN_CUDA_ARCHITECTURES": "75;80;86"},
    )
    # The containers import this module again: give them the same configuration.
    .env({"PYTHONUNBUFFERED": "1", "ENVIRONMENT": ENVIRONMENT, "MODAL_APP_NAME": APP_NAME,
          "GPU_TYPE_PROD" if PRODUCTION else "GPU_TYPE_DEV": DEFAULT_GPU})
    # Only the engine package travels: the Django side is never imported in a container.
    .add_local_file(_PIPELINE_DIR / "__init__.py", "/root/pipeline/__init__.py")
    .add_local_dir(_PIPELINE_DIR / "engine", "/root/pipeline/engine",
                   ignore=["**/__pycache__", "**/*.pyc"])
)

volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
app = modal.App(APP_NAME, image=image)


# --- the function bodies ----------------------------------------------------------------
def workspace_path(job_id: str) -> Path:
    """jobs/{job_id} on the volume; only a UUID ever becomes part of the path."""
    try:
        return VOLUME_ROOT / layout.JOBS_DIR / str(uuid.UUID(str(job_id)))
    except ValueError:
        raise ValueError(f"Not a job id: {job_id!r}.") from None


def run_stage(stage: str, job_id: str, args: list[str]) -> dict[str, Any]:
    """Run engine stage `stage` on the job's workspace on the volume; summarize it.

    The result is {"stage", "exit_code", "status", "message", "error", "seconds", "gpu"}:
    `exit_code` is the engine's (0 on success), `error` its one-line reason on failure.
    """
    from pipeline.engine import cli
    from pipeline.engine.progress import read_progress

    ws = workspace_path(job_id)
    args = [str(a) for a in args]
    if any(a == "-w" or a.startswith("--workspace") for a in args):
        raise ValueError("The workspace is chosen by the job id, not by the arguments.")
    volume.reload()  # see what the worker uploaded and what earlier stages wrote
    started, crash = time.monotonic(), ""
    with _committing_every(COMMIT_INTERVAL_S):
        try:
            code = cli.main([stage, "--workspace", str(ws), *args])
        except SystemExit as exc:  # argparse rejected the arguments
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception as exc:  # the engine already marked progress.json failed
            log.exception("the %s stage crashed", stage)
            code = 1
            crash = f"The {stage} stage crashed: {exc!r}"
    doc = read_progress(ws / layout.PROGRESS_JSON) or {}
    ran = doc.get("stage") == stage
    status = "succeeded" if code == 0 else "failed"
    error = "" if code == 0 else (
        (doc.get("error") if ran else None) or crash
        or f"The {stage} stage failed (exit code {code}); see the function's logs on Modal.")
    return {"stage": stage, "exit_code": code, "status": status,
            "message": (doc.get("message") if ran else "") or "", "error": error,
            "seconds": round(time.monotonic() - started, 1), "gpu": gpu_type()}


@contextlib.contextmanager
def _committing_every(interval: float) -> Iterator[None]:
    """Commit the volume every `interval` seconds while the body runs, and once after."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                volume.commit()
            except Exception:  # a missed periodic commit only delays progress
                log.warning("periodic volume commit failed", exc_info=True)

    thread = threading.Thread(target=loop, name="volume-commit", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        volume.commit()


def gpu_type() -> str | None:
    """The GPU this container got (Modal may have fallen back), as priced: T4, A10G, A100."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    name = out.strip().splitlines()[0] if out.strip() else ""
    return next((g for g in GPU_FALLBACK if g in name.upper()), name or None)


def check_health() -> dict[str, Any]:
    """What a stage needs: the engine's packages, a CUDA device, a writable volume."""
    from pipeline.engine.device import pick_device

    versions = {}
    for package in ("torch", "nerfstudio", "pycolmap", "tinycudann"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    volume.reload()
    probe_dir = Path(tempfile.mkdtemp(prefix=".health-", dir=VOLUME_ROOT))
    try:
        (probe_dir / "probe").write_text("ok")
        writable = (probe_dir / "probe").read_text() == "ok"
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    device = pick_device()
    return {"ok": bool(writable and versions["nerfstudio"] and versions["pycolmap"]
                       and versions["torch"]),
            "app": APP_NAME, "environment": ENVIRONMENT, "device": device, "gpu": gpu_type(),
            "packages": versions, "volume": str(VOLUME_ROOT), "volume_writable": writable}


# --- the Modal functions ----------------------------------------------------------------
_common: dict[str, Any] = {"volumes": {VOLUME_MOUNT: volume}, "retries": RETRIES}


@app.function(gpu=GPUS, timeout=TIMEOUTS["health_check"], volumes={VOLUME_MOUNT: volume})
def health_check() -> dict[str, Any]:
    return check_health()


# Poses run on CPU cores: SIFT on ≤100 photos of 1600 px takes well under a minute on 8
# cores, so a GPU would mostly wait (and bill) for the matcher. pycolmap's PyPI wheel is
# CPU-only; its CUDA build (pycolmap-cuda12) targets CUDA 12 while this image's torch is 13.
@app.function(cpu=8.0, memory=16 * 1024, timeout=TIMEOUTS["colmap"], **_common)
def process_colmap(job_id: str, args: list[str]) -> dict[str, Any]:
    return run_stage("colmap", job_id, args)


@app.function(gpu=GPUS, cpu=4.0, memory=16 * 1024, timeout=TIMEOUTS["train"], **_common)
def train_nerf(job_id: str, args: list[str]) -> dict[str, Any]:
    return run_stage("train", job_id, args)


@app.function(gpu=GPUS, cpu=4.0, memory=16 * 1024, timeout=TIMEOUTS["render"], **_common)
def render_frames(job_id: str, args: list[str]) -> dict[str, Any]:
    return run_stage("render", job_id, args)


@app.local_entrypoint()
def main() -> None:
    """`modal run pipeline/modal_app.py`: check the deployed image on a GPU."""
    report = health_check.remote()
    for key, value in report.items():
        print(f"{key}: {value}")
    if not report["ok"]:
        raise SystemExit("health check failed")
