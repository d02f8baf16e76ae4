"""Stale-job recovery: a running job whose worker stopped writing its heartbeat."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import TestCase
from django.utils import timezone

from pipeline.backends.local import LocalBackend
from pipeline.jobs.recovery import recover_stale_jobs, resend_lost_tasks
from pipeline.jobs.services import JobOptions, job_start
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import (
    add_photo,
    delete_photo_files,
    drain_queue,
    noise_png,
    storage,
)
from tests.synthetic_scene import make_scene

pytestmark = pytest.mark.django_db
__all__ = ["storage"]


@pytest.fixture
def product(django_user_model):
    owner = django_user_model.objects.create_user("shop")
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def running_job(product, *, heartbeat_age: float, handle: dict | None = None) -> Job:
    beat = timezone.now() - timedelta(seconds=heartbeat_age)
    job = Job.objects.create(product=product, status=Job.Status.RUNNING, stage="train",
                             attempts=1, backend_state={"handle": handle} if handle else {})
    Job.objects.filter(pk=job.pk).update(heartbeat_at=beat, updated_at=beat)
    return job


def orphan_engine(tmp_path, job_id: str) -> dict:
    """A real engine stage whose parent forgot it, like one left by a killed worker."""
    scene = make_scene(tmp_path / "scene", n_views=8, width=96, height=72)
    backend = LocalBackend()
    scene.write_ground_truth_workspace(backend.workspace(job_id))
    handle = backend.start(job_id, "train", ["--preset", "test"], time_limit=600)
    LocalBackend._children.pop(handle["pid"])
    return handle


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    if state == "Z":
        os.waitpid(pid, os.WNOHANG)  # our own child in this test: reap it
        return True
    return False


def test_fail_mode_stops_the_orphan_and_fails_with_a_clear_message(
        product, storage, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("NERF_DEVICE", "cpu")
    settings.JOB_STALE_ACTION = "fail"
    job_id = str(uuid.uuid4())
    handle = orphan_engine(tmp_path, job_id)
    job = running_job(product, heartbeat_age=settings.JOB_STALE_AFTER_SECONDS + 5,
                      handle=handle)
    Job.objects.filter(pk=job.pk).update(id=job_id)
    fresh_product = Product.objects.create(owner=product.owner, name="Plate", sku="P-1")
    fresh = running_job(fresh_product, heartbeat_age=1)

    assert recover_stale_jobs() == {"resumed": [], "failed": [job_id]}
    deadline = time.monotonic() + 10
    while not gone(handle["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(handle["pid"])
    job = Job.objects.get(pk=job_id)
    assert job.status == "failed" and job.backend_state == {}
    assert job.error.startswith("The worker running this job stopped during training")
    assert Job.objects.get(pk=fresh.pk).status == "running"  # its worker is alive


def test_resume_mode_queues_a_new_attempt(product, storage, settings):
    settings.JOB_STALE_ACTION = "resume"
    job = running_job(product, heartbeat_age=settings.JOB_STALE_AFTER_SECONDS + 5)
    assert recover_stale_jobs() == {"resumed": [str(job.pk)], "failed": []}
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 2)
    assert job.message == "The worker stopped during training; resuming there."
    assert job.task_id  # handed to the queue
    assert recover_stale_jobs() == {"resumed": [], "failed": []}  # nothing stale now


def test_schedules_exist_once():
    from django_q.models import Schedule

    from pipeline.jobs.schedules import SCHEDULES, ensure_schedules

    ensure_schedules()
    ensure_schedules()
    assert sorted(Schedule.objects.values_list("func", flat=True)) == sorted(
        s["func"] for s in SCHEDULES.values())


def test_a_job_that_keeps_losing_its_worker_is_failed(product, storage, settings):
    from pipeline.jobs.recovery import MAX_ATTEMPTS

    settings.JOB_STALE_ACTION = "resume"
    job = running_job(product, heartbeat_age=settings.JOB_STALE_AFTER_SECONDS + 5)
    Job.objects.filter(pk=job.pk).update(attempts=MAX_ATTEMPTS)
    assert recover_stale_jobs() == {"resumed": [], "failed": [str(job.pk)]}
    job.refresh_from_db()
    assert job.status == "failed" and "Try a lighter preset" in job.error


def queued_job(product, *, age: float, enqueue: bool) -> Job:
    # job_start enqueues once its transaction commits; the test's transaction never does.
    with TestCase.captureOnCommitCallbacks(execute=True):
        job = job_start(product, JobOptions(preset="test"), enqueue=enqueue)
    then = timezone.now() - timedelta(seconds=age)
    Job.objects.filter(pk=job.pk).update(updated_at=then, created_at=then)
    job.refresh_from_db()
    return job


@pytest.fixture
def photographed(product, settings):
    for i in range(settings.JOB_MIN_PHOTOS):
        add_photo(product, noise_png(i, (64, 48)), f"p{i}.png", i)
    drain_queue()  # Redis outlives the test database
    yield product
    delete_photo_files(product)
    drain_queue()


def test_a_queued_job_whose_task_was_lost_is_sent_again_once(photographed, settings):
    waited = settings.JOB_QUEUED_RESEND_AFTER_SECONDS + 5
    lost = queued_job(photographed, age=waited, enqueue=True)
    drain_queue()  # the broker loses it (a Redis flush, a failover)
    other = Product.objects.create(owner=photographed.owner, name="Cup", sku="CUP-1")
    for i in range(settings.JOB_MIN_PHOTOS):
        add_photo(other, noise_png(100 + i, (64, 48)), f"c{i}.png", i)
    waiting = queued_job(other, age=waited, enqueue=True)  # still in the queue: left alone

    assert resend_lost_tasks() == [str(lost.pk)]
    lost.refresh_from_db()
    assert lost.status == "queued" and "had lost this job" in lost.message
    tasks = drain_queue()
    assert sorted(t["args"][0] for t in tasks) == sorted([str(lost.pk), str(waiting.pk)])
    assert lost.task_id in {t["id"] for t in tasks}
    # Both tasks were taken off above: only `waiting` is sent again; `lost` was just sent
    # and waits another JOB_QUEUED_RESEND_AFTER_SECONDS before it could be.
    assert resend_lost_tasks() == [str(waiting.pk)]
    delete_photo_files(other)


def test_a_recently_queued_job_is_not_touched(photographed):
    queued_job(photographed, age=5, enqueue=False)
    assert resend_lost_tasks() == []
    assert drain_queue() == []
