"""Finding jobs whose worker died mid-stage, and resuming or failing them.

The worker writes Job.heartbeat_at every few seconds while it runs a job. A running job
whose heartbeat is older than JOB_STALE_AFTER_SECONDS lost its worker (kill -9, a crash,
a machine restart). The recovery schedule stops what is left of its engine stage (the
stage runs in its own process group and outlives the worker), then either queues the job
again, to resume at the stage that was cut short, or fails it with a clear message,
as JOB_STALE_ACTION says.

A queued job can get stuck too: its task may be lost before a worker takes it (a Redis
flush or failover, a broker restored from backup). Every few minutes, a job queued for
longer than JOB_QUEUED_RESEND_AFTER_SECONDS whose task is no longer waiting in the broker
gets its task sent again. Sending twice is safe: run_job claims a job once per attempt.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from pipeline.backends import BackendError, get_backend
from pipeline.errors import JobError
from pipeline.jobs.transitions import (
    job_enqueue,
    job_fail,
    job_requeue,
    job_touch_queued,
    stage_log_closed,
)
from pipeline.models import Job

log = logging.getLogger(__name__)

# A job that keeps losing its worker (e.g. it is killed for memory every time) is failed
# after this many attempts instead of being resumed forever.
MAX_ATTEMPTS = 3


def stale_jobs():
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    return Job.objects.filter(status=Job.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, updated_at__lt=cutoff))


def recover_stale_jobs() -> dict[str, list[str]]:
    """Resume or fail every stale job; returns the ids by outcome (the task's result)."""
    outcome: dict[str, list[str]] = {"resumed": [], "failed": []}
    for job in stale_jobs():
        stage = job.get_stage_display().lower()
        handle = (job.backend_state or {}).get("handle")
        if handle:
            try:
                get_backend(job.backend).cancel(str(job.pk), handle)
            except BackendError as exc:
                log.warning("could not stop the orphaned stage of job %s: %s", job.pk, exc)
        if settings.JOB_STALE_ACTION == "resume" and job.attempts < MAX_ATTEMPTS:
            if job_requeue(job=job,
                           message=f"The worker stopped during {stage}; resuming there."):
                # Sent at once: this runs in the scheduler, outside any transaction.
                job_enqueue(job=job)
                log.warning("job %s lost its worker during %s; queued again", job.pk, stage)
                outcome["resumed"].append(str(job.pk))
            continue
        reason = (f"The worker running this job stopped during {stage} (no sign of life for "
                  f"{settings.JOB_STALE_AFTER_SECONDS} s). Press Retry to continue from "
                  "there; finished stages are kept.")
        if job.attempts >= MAX_ATTEMPTS and settings.JOB_STALE_ACTION == "resume":
            reason = (f"The worker stopped during {stage} on each of {job.attempts} attempts; "
                      "the machine may lack the memory for this job. Try a lighter preset "
                      "or fewer, smaller frames.")
        if job_fail(job_id=str(job.pk), attempt=job.attempts, reason=reason,
                    stage_log=stage_log_closed(job)):
            log.warning("job %s lost its worker during %s; failed", job.pk, stage)
            outcome["failed"].append(str(job.pk))
    return outcome


def waiting_task_ids() -> set[str] | None:
    """Ids of the tasks waiting in the broker, read without taking them off it; None when
    this broker cannot be read that way."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    try:
        if type(broker).__name__ == "ORM":
            # Rows stay until the task is done, so this includes tasks being run.
            payloads = list(broker.get_connection().filter(key=broker.list_key)
                            .values_list("payload", flat=True))
        elif type(broker).__name__ == "Redis":
            payloads = broker.connection.lrange(broker.list_key, 0, -1)
        else:
            return None
    except Exception:  # the broker is down: nothing can be said, nothing is resent
        log.warning("could not read the task queue", exc_info=True)
        return None
    ids = set()
    for payload in payloads:
        try:
            ids.add(str(SignedPackage.loads(payload)["id"]))
        except Exception:  # a task signed with another key or not ours: not a job's
            continue
    return ids


def resend_lost_tasks() -> list[str]:
    """Send again the task of each job queued for long whose task the broker lost."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_QUEUED_RESEND_AFTER_SECONDS)
    waiting = None
    resent = []
    for job in Job.objects.filter(status=Job.Status.QUEUED, updated_at__lt=cutoff):
        if waiting is None:
            waiting = waiting_task_ids()
            if waiting is None:
                return []
        if job.task_id and job.task_id in waiting:
            continue  # still waiting its turn behind other jobs
        if job_touch_queued(job=job, message="Sent to the worker again: the task queue "
                                             "had lost this job."):
            try:
                job_enqueue(job=job)
            except JobError:  # the broker went away meanwhile: job_enqueue failed the job
                continue
            log.warning("job %s was queued but its task was lost; sent again", job.pk)
            resent.append(str(job.pk))
    return resent
