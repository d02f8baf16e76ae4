"""Running one stage of an existing job, for integrators who drive the stages themselves
(`POST /api/nerf/colmap`, `/api/nerf/train`, `/api/nerf/render`).

The job is queued again (a new attempt, like a retry) with a task that runs only the
asked stage, reusing the worker's JobRunner for progress, cancelling and failures. That
stage's results and those of every later stage are marked stale. `render` also finalizes
(unpacks the frames for the site), so it ends with a succeeded job. `colmap` and `train`
end with the job stopped ("cancelled", with a message saying which stage is done and what
to call next), because the job has no finished state short of its frames; a plain retry
then runs the rest.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from pipeline.models import Job
from pipeline.services import JobError, JobOptions, model_is_kept
from pipeline.tasks import JobRunner

log = logging.getLogger(__name__)

TASK = "pipeline.stage_api.run_one_stage"
STAGES = ("colmap", "train", "render")
NEXT_CALL = {"colmap": "POST /api/nerf/train", "train": "POST /api/nerf/render"}


def queue_stage(job: Job, stage: str, options: JobOptions | None = None) -> Job:
    """Queue `stage` of `job` alone. `options` may change the training steps (train) or the
    frame settings (render); other fields are ignored. Raises JobError when it cannot run."""
    if stage not in STAGES:
        raise JobError(f"Unknown stage {stage!r}: choose one of {', '.join(STAGES)}.")
    if job.is_active:
        raise JobError("This job is queued or running; wait for it or cancel it first.")
    if job.is_render_only and stage != "render":
        raise JobError("This job re-renders another job's model; only its render stage "
                       "can run.")
    if stage == "train" and job.colmap_finished_at is None:
        raise JobError("Camera poses are not done for this job yet; call "
                       "POST /api/nerf/colmap first.")
    if stage == "render" and job.train_finished_at is None and not model_is_kept(
            job.source_job or job):
        raise JobError("This job has no trained model yet; call POST /api/nerf/train first.")

    changes: dict = {}
    if options is not None and stage == "train" and options.iterations:
        changes["iterations"] = options.iterations
    if options is not None and stage == "render":
        resolved = JobOptions(preset=job.preset, frame_count=options.frame_count,
                              frame_size=options.frame_size, frame_rows=options.frame_rows
                              ).resolved(job.backend)
        changes.update(frame_count=resolved.frame_count, frame_size=resolved.frame_size,
                       frame_rows=resolved.frame_rows)
    planned = list(job.planned_stages)
    for later in planned[planned.index(stage):]:
        changes[f"{later}_started_at"] = None
        changes[f"{later}_finished_at"] = None

    now = timezone.now()
    try:
        with transaction.atomic():
            updated = Job.objects.filter(pk=job.pk, status=job.status,
                                         attempts=job.attempts).update(
                status=Job.Status.QUEUED, attempts=job.attempts + 1, error="",
                message=f"Queued to run {Job.Stage(stage).label.lower()} only.",
                stage_progress=0.0, eta_seconds=None, finished_at=None, heartbeat_at=None,
                backend_state={}, updated_at=now, **changes,
            )
            if not updated:
                raise JobError("This job changed meanwhile; fetch it again and retry.")
            job.refresh_from_db()
            transaction.on_commit(lambda: enqueue(job, stage))
    except IntegrityError:
        raise JobError(f"{job.product.name} already has a job queued or running; wait for "
                       "it to finish or cancel it first.") from None
    return job


def enqueue(job: Job, stage: str) -> None:
    from django_q.tasks import async_task

    try:
        task_id = async_task(TASK, str(job.pk), job.attempts, stage,
                             task_name=f"job-{job.pk}-{job.attempts}-{stage}", group="jobs")
    except Exception as exc:  # the broker is down: do not leave the job queued forever
        log.exception("could not enqueue stage %s of job %s", stage, job.pk)
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.FAILED, finished_at=timezone.now(), message="Could not be queued.",
            error=f"The task queue is not reachable ({exc.__class__.__name__}); try again.")
        raise JobError("The task queue is not reachable right now; try again in a minute.") \
            from exc
    Job.objects.filter(pk=job.pk).update(task_id=str(task_id)[:64])


class OneStageRunner(JobRunner):
    only: str = "render"

    def stages_to_run(self) -> list[str]:
        return [Job.Stage.RENDER, Job.Stage.FINALIZE] if self.only == "render" else [self.only]


def run_one_stage(job_id: str, attempt: int, stage: str) -> str:
    """The worker task behind queue_stage."""
    runner = OneStageRunner.claim(job_id, attempt)
    if runner is None:
        return "skipped"
    runner.only = stage
    status = runner.run()
    if stage in NEXT_CALL:
        now = timezone.now()
        Job.objects.filter(pk=job_id, status=Job.Status.RUNNING, attempts=attempt).update(
            status=Job.Status.CANCELLED, eta_seconds=None, finished_at=now, updated_at=now,
            message=f"Stopped after {Job.Stage(stage).label.lower()}, as asked. Next: "
                    f"{NEXT_CALL[stage]}, or retry the job to run all remaining stages.")
        status = Job.objects.values_list("status", flat=True).get(pk=job_id)
    return status
