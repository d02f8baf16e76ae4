"""pipeline.jobs.transitions: each status change is a compare-and-set on (status, attempt)."""

from __future__ import annotations

import pytest

from pipeline.errors import JobError
from pipeline.jobs import transitions
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import drain_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(django_user_model):
    owner = django_user_model.objects.create_user("shop")
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def make_job(product, status: str, attempts: int = 1, **fields) -> Job:
    return Job.objects.create(product=product, status=status, attempts=attempts, **fields)


def status_of(job: Job) -> tuple[str, int]:
    job.refresh_from_db()
    return job.status, job.attempts


def test_claim_takes_a_queued_attempt_once(product):
    job = make_job(product, Job.Status.QUEUED, attempts=2)
    assert not transitions.job_claim(job_id=str(job.pk), attempt=1)  # an old task
    assert transitions.job_claim(job_id=str(job.pk), attempt=2)
    assert not transitions.job_claim(job_id=str(job.pk), attempt=2)  # a second delivery
    job.refresh_from_db()
    assert (job.status, job.message) == ("running", "Starting.")
    assert job.started_at and job.heartbeat_at


def test_fail_only_the_running_attempt(product):
    job = make_job(product, Job.Status.RUNNING, attempts=2, backend_state={"handle": {}})
    assert not transitions.job_fail(job_id=str(job.pk), attempt=1, reason="old")
    assert transitions.job_fail(job_id=str(job.pk), attempt=2, reason="x" * 600)
    job.refresh_from_db()
    assert job.status == "failed" and job.error == "x" * 600
    assert len(job.message) == Job._meta.get_field("message").max_length
    assert job.backend_state == {} and job.finished_at and job.eta_seconds is None
    assert not transitions.job_fail(job_id=str(job.pk), attempt=2, reason="again")


def test_succeed_needs_the_job_still_running(product):
    job = make_job(product, Job.Status.CANCELLED)
    assert not transitions.job_succeed(job_id=str(job.pk), attempt=1, message="Done.")
    assert status_of(job) == ("cancelled", 1)
    job = make_job(Product.objects.create(owner=product.owner, name="B", sku="B"),
                   Job.Status.RUNNING)
    assert transitions.job_succeed(job_id=str(job.pk), attempt=1, message="Done.")
    job.refresh_from_db()
    assert (job.status, job.stage, job.progress, job.eta_seconds) == (
        "succeeded", "done", 1.0, 0)
    assert job.finalize_finished_at == job.finished_at


def test_cancel_any_attempt_or_only_the_workers_own(product):
    job = make_job(product, Job.Status.RUNNING, attempts=3)
    assert not transitions.job_cancel(job=job, attempt=2)
    assert transitions.job_cancel(job=job)
    assert status_of(job) == ("cancelled", 3)
    assert not transitions.job_cancel(job=job)  # nothing active to cancel


def test_requeue_is_a_new_attempt_from_the_status_last_seen(product):
    job = make_job(product, Job.Status.FAILED, attempts=1, error="boom",
                   backend_state={"handle": {"pid": 1}})
    stale = Job.objects.get(pk=job.pk)
    assert transitions.job_requeue(job=job, message="Again.", error="")
    assert (job.status, job.attempts, job.error, job.backend_state) == ("queued", 2, "", {})
    assert not transitions.job_requeue(job=stale, message="Again.")  # moved meanwhile
    assert status_of(job) == ("queued", 2)


def test_save_running_stops_writing_once_the_job_is_not_ours(product):
    job = make_job(product, Job.Status.RUNNING, attempts=1)
    assert transitions.job_save_running(job_id=str(job.pk), attempt=1, progress=0.5)
    transitions.job_cancel(job=job)
    assert not transitions.job_save_running(job_id=str(job.pk), attempt=1, progress=0.7)
    job.refresh_from_db()
    assert (job.status, job.progress) == ("cancelled", 0.5)


def test_enqueue_sends_the_attempt_and_records_the_task(product):
    drain_queue()
    job = make_job(product, Job.Status.QUEUED, attempts=2)
    transitions.job_enqueue(job=job, stage="colmap")
    [task] = [t for t in drain_queue() if t["args"][0] == str(job.pk)]
    assert task["func"] == transitions.TASK
    assert tuple(task["args"]) == (str(job.pk), 2, "colmap")
    job.refresh_from_db()
    assert job.task_id == str(task["id"])


def test_enqueue_fails_the_job_when_the_broker_is_down(product, monkeypatch):
    import django_q.tasks

    def refuse(*args, **kwargs):
        raise ConnectionError("no broker")

    monkeypatch.setattr(django_q.tasks, "async_task", refuse)
    job = make_job(product, Job.Status.QUEUED)
    with pytest.raises(JobError, match="not reachable"):
        transitions.job_enqueue(job=job)
    job.refresh_from_db()
    assert job.status == "failed" and "ConnectionError" in job.error
