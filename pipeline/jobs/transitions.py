"""The only code that changes a job's status.

Each change is a compare-and-set: an UPDATE conditioned on the status (and, for a worker,
the attempt) the caller last saw. When it matches no row, someone else moved the job first
(a cancel, a retry, recovery, a second delivery of the same task) and the caller backs
off; nothing here locks rows or reads before writing.

    queued ──claim──▶ running ──succeed──▶ succeeded
      ▲  │              │  │
      │  └──cancel──┐   │  └──fail──▶ failed ──requeue──▶ queued (attempt + 1)
      │             ▼   ▼
      └─requeue── cancelled / running (recovery)

Writes that keep the status (progress, heartbeats, the task id) sit here too, because they
are conditioned the same way: a worker that lost its job must not write over it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from pipeline.errors import JobError
from pipeline.models import Job
from pipeline.signals import job_finished

log = logging.getLogger(__name__)

TASK = "pipeline.jobs.tasks.run_job"


def clip(field: str, text: str) -> str:
    """`text` cut to the Job field's max_length, so a long engine error never fails a
    save."""
    return text[:Job._meta.get_field(field).max_length or len(text)]


def _running(job_id: str, attempt: int):
    return Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, attempts=attempt)


def _announce_finished(job_id: str, status: str) -> None:
    """pipeline.signals.job_finished, once the change commits (at once in autocommit)."""
    transaction.on_commit(lambda: job_finished.send_robust(
        sender=Job, job_id=str(job_id), status=status))


# --- queue ------------------------------------------------------------------------------
def job_enqueue(*, job: Job, stage: str | None = None) -> None:
    """Send the worker task for the job's current attempt (`stage`: that stage alone).

    A broker that cannot be reached fails the job (queued → failed) rather than leaving it
    queued forever, and raises JobError.
    """
    from django_q.tasks import async_task  # django_q reads its settings on import

    args: tuple[Any, ...] = (str(job.pk), job.attempts) + ((stage,) if stage else ())
    name = f"job-{job.pk}-{job.attempts}" + (f"-{stage}" if stage else "")
    try:
        task_id = async_task(TASK, *args, task_name=name, group="jobs")
    except Exception as exc:  # the broker is down: do not leave the job queued forever
        log.exception("could not enqueue job %s", job.pk)
        if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED,
                              attempts=job.attempts).update(
            status=Job.Status.FAILED, finished_at=timezone.now(),
            error=f"The task queue is not reachable ({exc.__class__.__name__}); "
                  "try again in a minute.",
            message="Could not be queued.",
        ):
            _announce_finished(str(job.pk), Job.Status.FAILED)
        raise JobError("The task queue is not reachable right now; try again in a minute.") \
            from exc
    job.task_id = clip("task_id", str(task_id))
    Job.objects.filter(pk=job.pk).update(task_id=job.task_id)


def stage_log_closed(job: Job) -> list[dict[str, Any]]:
    """The job's stage log with each entry still "running" closed as "lost", ended at the
    last sign of life: the attempt that opened it is over (its worker was killed, or
    stopped without recording it) and must not read as running beside a later one."""
    ended = (job.heartbeat_at or timezone.now()).isoformat()
    return [{**entry, "outcome": "lost", "finished_at": entry.get("finished_at") or ended}
            if entry.get("outcome") == "running" else entry for entry in job.stage_log or []]


def job_requeue(*, job: Job, message: str, **changes: Any) -> bool:
    """Make a stopped job (failed, cancelled, or running on a worker that died) queued
    again as a new attempt. False when the job moved meanwhile. The caller sends the task
    (job_enqueue), after its transaction commits."""
    now = timezone.now()
    moved = Job.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts).update(
        status=Job.Status.QUEUED, attempts=F("attempts") + 1, message=clip("message", message),
        backend_state={}, heartbeat_at=None, updated_at=now, stage_log=stage_log_closed(job),
        **changes,
    )
    if moved:
        job.refresh_from_db()
    return bool(moved)


def job_touch_queued(*, job: Job, message: str) -> bool:
    """Record that a queued job's task is being sent again; False when it is not queued
    for this attempt any more."""
    return bool(Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED,
                                   attempts=job.attempts).update(
        updated_at=timezone.now(), message=clip("message", message)))


# --- the worker -------------------------------------------------------------------------
def job_claim(*, job_id: str, attempt: int) -> bool:
    """queued → running for this attempt. False for a second delivery of the task, or an
    old task after a retry: a stage never runs twice at once."""
    now = timezone.now()
    return bool(Job.objects.filter(pk=job_id, status=Job.Status.QUEUED,
                                   attempts=attempt).update(
        status=Job.Status.RUNNING, heartbeat_at=now, updated_at=now, started_at=now,
        message="Starting."))


def job_save_running(*, job_id: str, attempt: int, **fields: Any) -> bool:
    """Write progress fields and the heartbeat; False when the job is no longer running
    for this attempt (cancelled, or handed to another worker)."""
    stamp = timezone.now()
    return bool(_running(job_id, attempt).update(heartbeat_at=stamp, updated_at=stamp,
                                                 **fields))


def job_beat(*, job_id: str, attempt: int) -> None:
    """The heartbeat alone, from a thread that waits on a long transfer."""
    _running(job_id, attempt).update(heartbeat_at=timezone.now())


def job_record_after_stop(*, job_id: str, attempt: int, stage_log: list) -> None:
    """What this attempt did, after it lost the job: the stage log, and no stage handle.
    The status stays whatever stopped it."""
    Job.objects.filter(pk=job_id, attempts=attempt).update(stage_log=stage_log,
                                                           backend_state={})


def job_succeed(*, job_id: str, attempt: int, message: str, **fields: Any) -> bool:
    """running → succeeded, with the results in `fields`."""
    finished = timezone.now()
    moved = bool(_running(job_id, attempt).update(
        status=Job.Status.SUCCEEDED, stage=Job.Stage.DONE, stage_progress=1.0,
        progress=1.0, eta_seconds=0, finalize_finished_at=finished, finished_at=finished,
        updated_at=finished, heartbeat_at=finished, backend_state={},
        message=clip("message", message), **fields))
    if moved:
        _announce_finished(job_id, Job.Status.SUCCEEDED)
    return moved


def job_fail(*, job_id: str, attempt: int, reason: str,
             from_statuses: Iterable[str] = (Job.Status.RUNNING,), **fields: Any) -> bool:
    """running → failed with `reason` (the user-facing error and message)."""
    now = timezone.now()
    moved = bool(Job.objects.filter(pk=job_id, status__in=tuple(from_statuses),
                                    attempts=attempt).update(
        status=Job.Status.FAILED, error=clip("error", reason),
        message=clip("message", reason), eta_seconds=None, finished_at=now, updated_at=now,
        backend_state={}, **fields))
    if moved:
        _announce_finished(job_id, Job.Status.FAILED)
    return moved


def job_cancel(*, job: Job, message: str = "Cancelled.", attempt: int | None = None) -> bool:
    """queued or running → cancelled. `attempt` None cancels whichever attempt is current:
    the owner cancels the job, not one delivery of its task; the worker passes its own."""
    now = timezone.now()
    jobs = Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE_STATUSES)
    if attempt is not None:
        jobs = jobs.filter(attempts=attempt)
    return bool(jobs.update(status=Job.Status.CANCELLED, message=clip("message", message),
                            eta_seconds=None, finished_at=now, updated_at=now))
