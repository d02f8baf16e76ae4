"""A stage entry whose attempt was killed is closed as "lost" when the job is resumed,
retried or failed by recovery: it never reads "running" beside the attempt that follows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pipeline.jobs import transitions
from pipeline.jobs.recovery import recover_stale_jobs
from pipeline.jobs.services import job_retry
from pipeline.models import Job
from products.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(django_user_model):
    owner = django_user_model.objects.create_user("shop")
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def killed_during_training(product, settings) -> Job:
    """A running job whose worker died while training: the colmap entry closed, the train
    entry still "running", no heartbeat for longer than JOB_STALE_AFTER_SECONDS."""
    beat = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 30)
    started = beat - timedelta(minutes=5)
    log = [
        {"stage": "colmap", "attempt": 1, "started_at": started.isoformat(),
         "finished_at": (started + timedelta(minutes=1)).isoformat(), "outcome": "succeeded"},
        {"stage": "train", "attempt": 1, "started_at": (started + timedelta(minutes=1))
         .isoformat(), "finished_at": None, "outcome": "running"},
    ]
    job = Job.objects.create(product=product, status=Job.Status.RUNNING, stage="train",
                             attempts=1, stage_log=log, colmap_started_at=started,
                             colmap_finished_at=started + timedelta(minutes=1))
    Job.objects.filter(pk=job.pk).update(heartbeat_at=beat, updated_at=beat)
    job.refresh_from_db()
    return job


def test_resuming_closes_the_killed_attempts_entry_as_lost_and_it_stays_so(product,
                                                                         settings):
    settings.JOB_STALE_ACTION = "resume"
    job = killed_during_training(product, settings)
    last_beat = job.heartbeat_at

    assert recover_stale_jobs()["resumed"] == [str(job.pk)]
    job.refresh_from_db()
    colmap, train = job.stage_log
    assert colmap["outcome"] == "succeeded"
    assert (train["outcome"], train["finished_at"]) == ("lost", last_beat.isoformat())

    # The new attempt runs the stage again and the job succeeds: the lost entry stays lost.
    assert transitions.job_claim(job_id=str(job.pk), attempt=2)
    rerun = {"stage": "train", "attempt": 2, "started_at": timezone.now().isoformat(),
             "finished_at": timezone.now().isoformat(), "outcome": "succeeded"}
    assert transitions.job_succeed(job_id=str(job.pk), attempt=2, message="Done.",
                                   stage_log=[*job.stage_log, rerun])
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert [(e["attempt"], e["outcome"]) for e in job.stage_log] == [
        (1, "succeeded"), (1, "lost"), (2, "succeeded")]
    assert all(e["finished_at"] for e in job.stage_log)


def test_failing_a_stale_job_closes_its_entry_as_lost(product, settings):
    settings.JOB_STALE_ACTION = "fail"
    job = killed_during_training(product, settings)
    assert recover_stale_jobs()["failed"] == [str(job.pk)]
    job.refresh_from_db()
    assert job.status == "failed" and job.stage_log[-1]["outcome"] == "lost"


def test_retrying_a_job_cancelled_under_a_dead_worker_closes_its_entry(product, settings):
    job = killed_during_training(product, settings)
    assert transitions.job_cancel(job=job)  # nobody was left to record the stage's end
    job.refresh_from_db()
    assert job.stage_log[-1]["outcome"] == "running"
    job_retry(job)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("queued", 2)
    assert job.stage_log[-1]["outcome"] == "lost"
