"""Jobs on the real worker with the real engine, on the synthetic scene (CPU, tiny).

Kept short on purpose: few training steps and a handful of 48 px frames. The poses of the
scene are computed once per module (the colmap stage, through the engine's command line)
and copied into the workspace of the tests that start after poses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule
from PIL import Image

from pipeline.backends.local import LocalBackend
from pipeline.delivery.cleanup import cleanup_workspaces
from pipeline.delivery.storage import job_compare_dir, job_model_dir
from pipeline.jobs.selectors import read_manifest
from pipeline.jobs.services import (
    JobOptions,
    job_cancel,
    job_rerender,
    job_retry,
    job_start,
)
from pipeline.jobs.tasks import run_job
from pipeline.models import Job
from products.models import Product
from tests.conftest import ROOT, wait_for
from tests.site.jobs_fixtures import (
    add_photo,
    add_photos_from,
    delete_photo_files,
    frames_dir,
    noise_png,
    storage,
)
from tests.synthetic_scene import make_scene

__all__ = ["storage"]
TINY = {"preset": "test", "frame_count": 4, "frame_size": 48}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), n_views=24)


@pytest.fixture(scope="module")
def posed_workspace(scene, tmp_path_factory) -> Path:
    """A workspace after the colmap stage on the scene's photos (run once per module)."""
    ws = tmp_path_factory.mktemp("posed")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.engine", "colmap", "--workspace", str(ws),
         "--images", str(scene.images_dir)],
        cwd=ROOT, env={**os.environ, "NERF_DEVICE": "cpu"}, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return ws


@pytest.fixture(autouse=True)
def cpu(monkeypatch):
    monkeypatch.setenv("NERF_DEVICE", "cpu")


@pytest.fixture
def product(django_user_model) -> Iterator[Product]:
    owner = django_user_model.objects.create_user("shop", password="pw-shop-123")
    product = Product.objects.create(owner=owner, name="Box and ball", sku="BOX-1")
    yield product
    delete_photo_files(product)


@pytest.fixture
def job_env(worker_env, storage) -> dict[str, str]:
    worker_env.update(storage, NERF_DEVICE="cpu")
    return worker_env


def start_cluster(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_cluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def posed_job(product: Product, posed: Path, **options) -> Job:
    """A queued job whose colmap stage is done: the posed workspace copied into place."""
    job = job_start(product, JobOptions(**{**TINY, **options}), backend="local",
                    enqueue=False)
    ws = LocalBackend().workspace(str(job.pk))
    shutil.copytree(posed, ws)
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(colmap_started_at=now, colmap_finished_at=now)
    job.refresh_from_db()
    return job


def training_handle(job: Job) -> dict | None:
    job.refresh_from_db()
    handle = job.backend_state.get("handle")
    if job.stage == "train" and job.stage_progress > 0 and handle:
        return handle
    return None


def test_failed_job_shows_the_engines_message_then_retry_runs_to_the_end(
        product, scene, job_env, qcluster, settings):
    """Through a real qcluster: unplaceable photos fail at poses with the engine's own
    message; after adding good photos, a retry runs every stage and finishes the spin."""
    for i in range(settings.JOB_MIN_PHOTOS):
        add_photo(product, noise_png(i), f"noise{i}.png", i)
    job = job_start(product, JobOptions(**TINY, iterations=8), backend="local")
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, status="failed").first(),
                   timeout=120, what="the job to fail at poses")
    assert job.stage == "colmap" and job.colmap_finished_at is None
    assert job.error.startswith("Only 0 of 8 photos could be placed")
    assert "overlap between shots" in job.error
    assert job.stage_log[-1]["outcome"] == "failed"

    add_photos_from(product, scene.images_dir)
    job = job_retry(job)
    seen = set()

    def finished():
        current = Job.objects.get(pk=job.pk)
        seen.add((current.stage, round(current.progress, 1)))
        return current if current.status in ("succeeded", "failed") else None

    job = wait_for(finished, timeout=400, interval=0.5, what="the retried job to finish")
    assert job.status == "succeeded", job.error
    assert (job.stage, job.progress, job.attempts) == ("done", 1.0, 2)
    # Progress was visible on the way, stage by stage.
    assert {"colmap", "train", "render"} <= {stage for stage, _ in seen}
    assert any(0 < p < 1 for _, p in seen)
    for stage, started, ended in job.stage_times():
        assert started and ended and started <= ended, stage
    assert job.colmap_finished_at <= job.train_started_at
    assert job.train_finished_at <= job.render_started_at
    assert job.render_finished_at <= job.finalize_started_at
    assert [(e["stage"], e["attempt"], e["outcome"]) for e in job.stage_log] == [
        ("colmap", 1, "failed"), ("colmap", 2, "succeeded"), ("train", 2, "succeeded"),
        ("render", 2, "succeeded")]
    assert job.metrics["colmap"]["placed"] >= 24
    assert job.actual_cost == 0 and job.backend_state == {}

    manifest = read_manifest(job)
    root = frames_dir(job)
    assert manifest["count"] == 4 and len(manifest["frames"]) == 4
    for frame in manifest["frames"]:
        with Image.open(root / frame["png"]) as png:
            assert png.mode == "RGBA" and png.size == (48, 48)
        with Image.open(root / frame["preview"]) as preview:
            assert preview.format == "WEBP" and preview.size == (48, 48)
    with Image.open(root / manifest["sprite"]["file"]) as sprite:
        assert sprite.format == "WEBP"
        assert sprite.size == (manifest["sprite"]["columns"] * 48,
                               manifest["sprite"]["rows"] * 48)
    assert [b["file"] for b in manifest["batches"]] == ["batches/batch_00.zip"]
    assert (job_model_dir(job) / "model" / "nerfacto" / "config.yml").exists()
    # Three photos beside renders from their own cameras, kept privately with the model.
    comparison = job.comparison
    assert comparison["verdict"] == job.metrics["render"]["verdict"]
    assert comparison["verdict"] in ("faithful", "fair", "poor")
    assert [v["photo_file"] for v in comparison["views"]] == [
        "photo_1.jpg", "photo_2.jpg", "photo_3.jpg"]
    # …and beside them each trained photo's mask over the photo.
    masks = comparison["masks"]
    assert len(masks) >= 3 and all(0 < m["coverage"] < 1 for m in masks)
    assert sorted(p.name for p in job_compare_dir(job).iterdir()) == sorted([
        "compare.json", "photo_1.jpg", "photo_2.jpg", "photo_3.jpg", "render_1.png",
        "render_2.png", "render_3.png", "masks.json",
        *(f"mask_{n}.jpg" for n in range(1, len(masks) + 1))])
    assert not [p for p in root.rglob("*") if p.name.startswith(("photo_", "compare", "mask"))]

    out = _call("jobs")
    assert str(job.pk)[:8] in out and "succeeded" in out and "100%" in out


def test_cancel_during_training_stops_the_engine_and_keeps_the_workspace(
        product, scene, posed_workspace, job_env, qcluster):
    add_photos_from(product, scene.images_dir)
    job = posed_job(product, posed_workspace, iterations=2000)
    from pipeline.jobs.transitions import job_enqueue

    job_enqueue(job=job)
    handle = wait_for(lambda: training_handle(job), timeout=120, what="training to run")
    assert alive(handle["pid"])
    cancelled_at = time.monotonic()
    job = job_cancel(job)
    assert job.status == "cancelled"
    wait_for(lambda: not alive(handle["pid"]), timeout=10, what="the engine to stop")
    assert time.monotonic() - cancelled_at < 10
    ws = LocalBackend().workspace(str(job.pk))
    assert (ws / "dataset" / "transforms.json").exists() and (ws / "images.zip").exists()
    # The worker notices too and records the stage as cancelled, without touching status.
    job = wait_for(lambda: Job.objects.filter(pk=job.pk, backend_state={}).first(),
                   timeout=15, what="the worker to let go")
    assert job.status == "cancelled" and job.stage_log[-1]["outcome"] in ("cancelled",
                                                                          "failed")
    assert job.error == ""  # no failure written over the cancel


@pytest.mark.parametrize("action", ["fail", "resume"])
def test_worker_killed_mid_stage_is_recovered(product, scene, posed_workspace, job_env,
                                              tmp_path, action):
    add_photos_from(product, scene.images_dir)
    job_env.update(JOB_STALE_AFTER_SECONDS="6", JOB_STALE_ACTION=action)
    job = posed_job(product, posed_workspace, iterations=2000)
    first = start_cluster(job_env, tmp_path / "cluster1.log")
    second = None
    try:
        from pipeline.jobs.transitions import job_enqueue

        job_enqueue(job=job)
        handle = wait_for(lambda: training_handle(job), timeout=120, what="training to run")
        os.killpg(first.pid, signal.SIGKILL)  # the worker dies, its engine stage with it
        first.wait()
        wait_for(lambda: not alive(handle["pid"]), timeout=30,
                 what="the engine to die with its worker")
        # The new worker's scheduler runs recovery at once instead of within the minute.
        Schedule.objects.filter(func="pipeline.jobs.recovery.recover_stale_jobs").update(
            next_run=timezone.now())
        second = start_cluster(job_env, tmp_path / "cluster2.log")
        if action == "fail":
            job = wait_for(lambda: Job.objects.filter(pk=job.pk, status="failed").first(),
                           timeout=120, what="recovery to fail the job")
            assert job.error.startswith("The worker running this job stopped during "
                                        "training")
            assert "Press Retry" in job.error
            assert job.stage_log[-1]["outcome"] == "lost"  # not "running" for ever
        else:
            new = wait_for(lambda: (h := training_handle(job)) and h["pid"] != handle["pid"]
                           and h, timeout=120, what="training to resume on the new worker")
            job.refresh_from_db()
            assert (job.status, job.attempts) == ("running", 2)
            assert [(e["stage"], e["outcome"]) for e in job.stage_log] == [
                ("train", "lost"), ("train", "running")]  # the killed attempt's is closed
            job_cancel(job)
            wait_for(lambda: not alive(new["pid"]), timeout=10, what="the engine to stop")
    finally:
        stop_cluster(first)
        if second is not None:
            stop_cluster(second)
    assert Job.objects.get(pk=job.pk).status != "running"


def test_retry_after_a_render_failure_renders_only_then_rerender_after_cleanup(
        product, scene, posed_workspace, storage, settings, transactional_db):
    add_photos_from(product, scene.images_dir)
    job = posed_job(product, posed_workspace, iterations=4)
    colmap_started = job.colmap_started_at
    settings.JOB_STAGE_TIME_LIMITS = {**settings.JOB_STAGE_TIME_LIMITS, "render": 1}
    assert run_job(str(job.pk), 1) == "failed"
    job.refresh_from_db()
    assert job.stage == "render" and "took longer than its limit" in job.error
    assert job.train_finished_at is not None and job.render_finished_at is None
    checkpoint = next((job_model_dir(job) / "model").rglob("*.ckpt"))
    ws = LocalBackend().workspace(str(job.pk))
    ws_checkpoint = next((ws / "model").rglob("*.ckpt"))
    mtimes = (ws_checkpoint.stat().st_mtime_ns, (ws / "dataset" / "transforms.json")
              .stat().st_mtime_ns)
    train_started = job.train_started_at

    settings.JOB_STAGE_TIME_LIMITS = {**settings.JOB_STAGE_TIME_LIMITS, "render": 600}
    job = job_retry(job)
    assert run_job(str(job.pk), 2) == "succeeded"
    job.refresh_from_db()
    # Neither poses nor training ran again: no new entries, same times, untouched files.
    assert [(e["stage"], e["attempt"]) for e in job.stage_log] == [
        ("train", 1), ("render", 1), ("render", 2)]
    assert (job.colmap_started_at, job.train_started_at) == (colmap_started, train_started)
    assert (ws_checkpoint.stat().st_mtime_ns, (ws / "dataset" / "transforms.json")
            .stat().st_mtime_ns) == mtimes
    assert read_manifest(job)["count"] == 4

    # Cleanup: only this finished job's workspace goes; frames and model stay.
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(
        hours=settings.MODAL_VOLUME_CLEANUP_HOURS + 1))
    assert cleanup_workspaces() == [str(job.pk)]
    assert not ws.exists() and checkpoint.exists() and read_manifest(job)

    # The kept model renders again, with other frame settings, without its workspace.
    settings.CLEANUP_AFTER_COLLECT = True
    again = job_rerender(job, JobOptions(frame_count=3, frame_size=40, frame_rows=2,
                                         frame_fill=70))
    assert run_job(str(again.pk), 1) == "succeeded", Job.objects.get(pk=again.pk).error
    again.refresh_from_db()
    manifest = read_manifest(again)
    assert (manifest["count"], manifest["rows"], manifest["width"]) == (6, 2, 40)
    # Four training steps leave no silhouette to frame: the box is framed instead.
    assert manifest["fill_percent"] == again.frame_fill == 70
    assert manifest["framed_to"] in ("product", "box")
    assert again.colmap_started_at is None and again.train_started_at is None
    assert [e["stage"] for e in again.stage_log] == ["render"]
    assert not LocalBackend().workspace_exists(str(again.pk))  # cleaned after collecting


def _call(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
