"""Deleting job workspaces that are no longer needed.

A workspace (images.zip, poses, dataset, model, frame zips) is only needed while its job
runs or may be retried. After MODAL_VOLUME_CLEANUP_HOURS past a job's end it is deleted
(or right after the frames are collected, with CLEANUP_AFTER_COLLECT). Collected frames
(the frames storage) and kept models (MODEL_STORAGE_PATH) are never touched here, nor the
workspace of a queued or running job.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from pipeline.backends import BackendError, get_backend
from pipeline.models import Job

log = logging.getLogger(__name__)

FINISHED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


def cleanup_workspaces(older_than_hours: float | None = None) -> list[str]:
    """Delete the workspaces of jobs that finished long enough ago; return their ids.

    Folders that belong to no job in this database are left alone: another site (or the
    test suite) may share the data root.
    """
    hours = settings.MODAL_VOLUME_CLEANUP_HOURS if older_than_hours is None \
        else older_than_hours
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted: list[str] = []
    backends = {settings.NERF_BACKEND} | set(
        Job.objects.values_list("backend", flat=True).distinct())
    for name in sorted(backends):
        try:
            backend = get_backend(name)
        except (BackendError, ImportError) as exc:
            log.warning("cleanup skips the %s backend: %s", name, exc)
            continue
        candidates = set(Job.objects.filter(
            backend=name, status__in=FINISHED, finished_at__lt=cutoff,
        ).values_list("pk", flat=True))
        present = set(backend.list_workspaces())
        for job_id in sorted({str(pk) for pk in candidates} & present):
            # Checked again right before deleting: a retry may have queued it meanwhile.
            if Job.objects.filter(pk=job_id).exclude(status__in=FINISHED).exists():
                continue
            try:
                if backend.cleanup(job_id):
                    deleted.append(job_id)
            except (BackendError, OSError) as exc:
                log.warning("could not delete the workspace of job %s: %s", job_id, exc)
    if deleted:
        log.info("deleted %d job workspaces", len(deleted))
    return deleted
