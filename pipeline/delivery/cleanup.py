"""Deleting job workspaces that are no longer needed, and every file of a deleted job.

A workspace (images.zip, poses, dataset, model, frame zips) is only needed while its job
runs or may be retried. After MODAL_VOLUME_CLEANUP_HOURS past a job's end it is deleted
(or right after the frames are collected, with CLEANUP_AFTER_COLLECT). Collected frames
(the frames storage) and kept models (MODEL_STORAGE_PATH) of existing jobs are never
touched here, nor the workspace of a queued or running job.

A deleted job (its product deleted, or the job itself in the admin) takes everything
with it once the deletion commits: its stage is stopped, its workspace, frames and kept
model removed (`remove_deleted_job_files`). What that could not reach (the Modal volume
was down) the schedule removes later: a workspace whose job is not in the database any
more is deleted once it has not changed for MODAL_VOLUME_CLEANUP_HOURS. The wait keeps
it off a workspace that another site sharing the data root or volume is still using.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from pipeline.backends import BackendError, get_backend
from pipeline.delivery.storage import delete_job_frames, job_model_dir
from pipeline.models import Job

log = logging.getLogger(__name__)

FINISHED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


def cleanup_workspaces(older_than_hours: float | None = None) -> list[str]:
    """Delete the workspaces of jobs that finished long enough ago, and of jobs deleted
    from the database that have not changed for as long; return their ids."""
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
        known = {str(pk) for pk in Job.objects.filter(pk__in=present)
                 .values_list("pk", flat=True)}
        for job_id in sorted(present - known):  # its job was deleted (or is another site's)
            changed = backend.workspace_changed_at(job_id)
            if changed is not None and changed < cutoff.timestamp() \
                    and _cleanup(backend, job_id):
                deleted.append(job_id)
        for job_id in sorted({str(pk) for pk in candidates} & present):
            # Checked again right before deleting: a retry may have queued it meanwhile.
            if Job.objects.filter(pk=job_id).exclude(status__in=FINISHED).exists():
                continue
            if _cleanup(backend, job_id):
                deleted.append(job_id)
    if deleted:
        log.info("deleted %d job workspaces", len(deleted))
    return deleted


def _cleanup(backend, job_id: str) -> bool:
    try:
        return backend.cleanup(job_id)
    except (BackendError, OSError) as exc:
        log.warning("could not delete the workspace of job %s: %s", job_id, exc)
        return False


def remove_deleted_job_files(job: Job) -> None:
    """Everything a deleted job left, once its deletion has committed: its stage stopped
    (a queued or running job), its workspace (local disk or the Modal volume), its
    published frames and its kept model with the comparison. Each part is best effort and
    logged: the row is gone either way, and the schedule takes a leftover workspace."""
    job_id = str(job.pk)
    try:
        backend = get_backend(job.backend)
        handle = (job.backend_state or {}).get("handle")
        if handle:
            backend.cancel(job_id, handle)
        backend.cleanup(job_id)
    except (BackendError, ImportError, OSError) as exc:
        log.warning("deleted job %s: could not stop it or delete its workspace: %s",
                    job_id, exc)
    try:
        delete_job_frames(job)
    except OSError as exc:
        log.warning("deleted job %s: could not delete its frames: %s", job_id, exc)
    shutil.rmtree(job_model_dir(job), ignore_errors=True)
