"""Finding jobs whose worker died mid-stage, and resuming or failing them.

The worker writes Job.heartbeat_at every few seconds while it runs a job. A running job
whose heartbeat is older than JOB_STALE_AFTER_SECONDS lost its worker (kill -9, a crash,
a machine restart). The recovery schedule stops what is left of its engine stage (the
stage runs in its own process group and outlives the worker), then either queues the job
again, to resume at the stage that was cut short, or fails it with a clear message,
as JOB_STALE_ACTION says.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from pipeline.backends import BackendError, get_backend
from pipeline.models import Job
from pipeline.tasks import requeue

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
            if requeue(str(job.pk), job.attempts,
                       f"The worker stopped during {stage}; resuming there."):
                log.warning("job %s lost its worker during %s; queued again", job.pk, stage)
                outcome["resumed"].append(str(job.pk))
            continue
        now = timezone.now()
        reason = (f"The worker running this job stopped during {stage} (no sign of life for "
                  f"{settings.JOB_STALE_AFTER_SECONDS} s). Press Retry to continue from "
                  "there; finished stages are kept.")
        if job.attempts >= MAX_ATTEMPTS and settings.JOB_STALE_ACTION == "resume":
            reason = (f"The worker stopped during {stage} on each of {job.attempts} attempts; "
                      "the machine may lack the memory for this job. Try a lighter preset "
                      "or fewer, smaller frames.")
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING,
                              attempts=job.attempts).update(
                status=Job.Status.FAILED, error=reason, message=reason[:500],
                eta_seconds=None, finished_at=now, updated_at=now, backend_state={}):
            log.warning("job %s lost its worker during %s; failed", job.pk, stage)
            outcome["failed"].append(str(job.pk))
    return outcome
