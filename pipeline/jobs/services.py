"""Jobs: start, estimate, cancel, retry, re-render, and one stage alone.

Views, the admin, the REST API and management commands call these functions; they own
the transactions and the side effects (enqueueing the worker task, stopping a stage).
Status changes themselves go through pipeline.jobs.transitions. Every refusal raises JobError
with a message meant for the shop owner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from pipeline import costs
from pipeline.backends import BackendError, get_backend
from pipeline.engine.catalogue import ENGINE_STAGES, RERENDER_STAGES
from pipeline.engine.presets import (
    DEFAULT_FILL_PERCENT,
    MAX_FILL_PERCENT,
    MIN_FILL_PERCENT,
    PRESET_NAMES,
    get_preset,
)
from pipeline.errors import JobError
from pipeline.jobs import transitions
from pipeline.jobs.selectors import first_unfinished_stage, min_photos, model_is_kept
from pipeline.jobs.transitions import job_enqueue, job_requeue
from pipeline.models import Job
from products.models import Photo, Product
from products.selectors import product_usable_photos

log = logging.getLogger(__name__)

MAX_ITERATIONS = 200_000
MAX_FRAME_COUNT = 10_000
MIN_FRAME_SIZE, MAX_FRAME_SIZE = 32, 4096
MAX_FRAME_ROWS = 9


@dataclass
class JobOptions:
    """What the user chooses for a job. None means the preset's default for the device
    the job runs on (e.g. 1440 frames on a GPU, a handful on a CPU)."""

    preset: str = "standard"
    iterations: int | None = None
    frame_count: int | None = None
    frame_size: int | None = None
    frame_rows: int = 1
    frame_fill: int = DEFAULT_FILL_PERCENT
    """Percent of the frame's side the product's widest silhouette spans."""
    gpu_type: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise JobError(f"Unknown preset {self.preset!r}: choose one of "
                           f"{', '.join(PRESET_NAMES)}.")
        _check_range("Training steps", self.iterations, 1, MAX_ITERATIONS)
        _check_range("The frame count", self.frame_count, 1, MAX_FRAME_COUNT)
        _check_range("The frame size", self.frame_size, MIN_FRAME_SIZE, MAX_FRAME_SIZE,
                     unit=" pixels")
        _check_range("The number of rows", self.frame_rows, 1, MAX_FRAME_ROWS)
        _check_range("The product's share of the frame", self.frame_fill, MIN_FILL_PERCENT,
                     MAX_FILL_PERCENT, unit=" percent")
        if self.gpu_type is not None and self.gpu_type not in costs.GPU_PRICES_PER_HOUR:
            raise JobError(f"Unknown GPU type {self.gpu_type!r}: choose one of "
                           f"{', '.join(costs.GPU_PRICES_PER_HOUR)}.")

    def resolved(self, backend: str) -> JobOptions:
        """A copy with the preset's defaults filled in for the backend's device: the
        training steps too, so the job stores, estimates and passes to the engine one
        number, wherever the engine runs (NERF_DEFAULT_ITERATIONS is read here, on the
        site, for a GPU's `standard`)."""
        device = costs.local_device() if backend == "local" else "cuda"
        preset = get_preset(self.preset, device)
        gpu_type = None if backend == "local" else (self.gpu_type or settings.GPU_TYPE)
        return JobOptions(
            preset=self.preset,
            iterations=self.iterations or preset.iterations,
            frame_count=self.frame_count or preset.frames,
            frame_size=self.frame_size or preset.frame_size,
            frame_rows=self.frame_rows,
            frame_fill=self.frame_fill,
            gpu_type=gpu_type,
        )


def _check_range(what: str, value: int | None, lo: int, hi: int, unit: str = "") -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"{what} must be a whole number.")
    if not lo <= value <= hi:
        raise JobError(f"{what} must be between {lo} and {hi}{unit}; got {value}.")


# --- photos --------------------------------------------------------------------------
def photos_check(*, product: Product) -> list[Photo]:
    """The product's usable photos; JobError when there are too few for a spin."""
    photos = product_usable_photos(product=product)
    count, needed = len(photos), min_photos()
    if count < needed:
        raise JobError(
            f"This product has {count} usable photo{'s' if count != 1 else ''}; a 360° spin "
            f"needs at least {needed}. Add photos taken all around the product, each "
            "overlapping the last, then try again."
        )
    return photos


# --- estimates -----------------------------------------------------------------------
def default_backend() -> str:
    return settings.NERF_BACKEND


def job_estimate(product: Product, options: JobOptions, *,
                 backend: str | None = None) -> costs.Estimate:
    """Expected seconds per stage and cost (USD) of a job with these options."""
    backend = backend or default_backend()
    opts = options.resolved(backend)
    try:
        return costs.estimate(
            backend=backend, preset=opts.preset,
            photo_count=len(product_usable_photos(product=product)),
            frame_count=opts.frame_count, frame_size=opts.frame_size,
            frame_rows=opts.frame_rows, iterations=opts.iterations, gpu_type=opts.gpu_type,
        )
    except ValueError as exc:
        raise JobError(str(exc)) from None


# --- lifecycle -----------------------------------------------------------------------
def job_start(product: Product, options: JobOptions, *, backend: str | None = None,
              enqueue: bool = True) -> Job:
    """Create a queued Job for `product` and hand it to the worker.

    Refuses (JobError) when the product has too few usable photos or already has a job
    queued or running. With enqueue=False the caller runs it (`manage.py spin`).
    """
    backend = backend or default_backend()
    photos_check(product=product)
    opts = options.resolved(backend)
    estimate = job_estimate(product, options, backend=backend)
    try:
        with transaction.atomic():
            if Job.objects.filter(product=product, status__in=Job.ACTIVE_STATUSES).exists():
                raise JobError(_already_active(product))
            job = Job.objects.create(
                product=product, backend=backend, preset=opts.preset,
                iterations=opts.iterations, frame_count=opts.frame_count,
                frame_size=opts.frame_size, frame_rows=opts.frame_rows,
                frame_fill=opts.frame_fill,
                gpu_type=opts.gpu_type or "", estimated_cost=estimate.cost_usd,
                attempts=1, message="Waiting for the worker.",
                eta_seconds=round(estimate.total_seconds),
            )
            if enqueue:
                transaction.on_commit(lambda: job_enqueue(job=job))
    except IntegrityError:  # a concurrent start won the race for the one active job
        raise JobError(_already_active(product)) from None
    return job


@dataclass
class StartResult:
    """One product's outcome in a batch: its new job, or why it was refused."""

    product_id: int
    job: Job | None = None
    error: str | None = None


def job_start_many(*, products: dict[int, Product], product_ids: list[int],
                   options: JobOptions) -> list[StartResult]:
    """Start a job with the same options for each product id, once each, in order. One
    refusal does not stop the others; an id missing from `products` is "Not found."."""
    results = []
    for product_id in dict.fromkeys(product_ids):
        product = products.get(product_id)
        if product is None:
            results.append(StartResult(product_id, error="Not found."))
            continue
        try:
            results.append(StartResult(product_id, job=job_start(product, options)))
        except JobError as exc:
            results.append(StartResult(product_id, error=str(exc)))
    return results


def job_cancel(job: Job) -> Job:
    """Stop a queued or running job. Its workspace stays, so it can be retried."""
    stopped = transitions.job_cancel(job=job)
    job.refresh_from_db()
    if not stopped:
        raise JobError(f"This job has already {job.get_status_display().lower()}; "
                       "there is nothing to cancel.")
    # The worker notices within seconds and stops the stage itself; stopping it here
    # too covers a worker that is busy or gone.
    handle = job.backend_state.get("handle")
    if handle:
        try:
            get_backend(job.backend).cancel(str(job.pk), handle)
        except BackendError as exc:
            log.warning("could not stop the stage of job %s: %s", job.pk, exc)
    return job


def job_retry(job: Job) -> Job:
    """Queue a failed or cancelled job again. It resumes at its first unfinished stage
    and reuses what the finished stages produced (poses, the trained model)."""
    if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
        raise JobError(f"Only a failed or cancelled job can be retried; this one is "
                       f"{job.get_status_display().lower()}.")
    resume_at = first_unfinished_stage(job)
    if resume_at == Job.Stage.COLMAP:
        photos_check(product=job.product)
    try:
        with transaction.atomic():
            if not job_requeue(
                    job=job, error="", stage_progress=0.0, eta_seconds=None,
                    finished_at=None,
                    message=f"Queued again: resumes at {Job.Stage(resume_at).label.lower()}."):
                raise JobError("This job changed meanwhile; reload the page and try again.")
            transaction.on_commit(lambda: job_enqueue(job=job))
    except IntegrityError:
        raise JobError(_already_active(job.product)) from None
    return job


def job_rerender(job: Job, options: JobOptions) -> Job:
    """A new render-only job that renders `job`'s kept model with other frame settings.

    Needs no photos and no training; works after the workspace was cleaned up.
    """
    source = job.source_job if job.is_render_only and job.source_job else job
    if not model_is_kept(source):
        raise JobError("This job has no trained model kept to render again; start a new "
                       "job instead.")
    backend = job.backend
    opts = JobOptions(preset=source.preset, iterations=source.iterations,
                      frame_count=options.frame_count, frame_size=options.frame_size,
                      frame_rows=options.frame_rows, frame_fill=options.frame_fill,
                      gpu_type=options.gpu_type or source.gpu_type or None).resolved(backend)
    estimate = costs.estimate(
        backend=backend, preset=opts.preset, photo_count=0, frame_count=opts.frame_count,
        frame_size=opts.frame_size, frame_rows=opts.frame_rows, gpu_type=opts.gpu_type,
        stages=RERENDER_STAGES,
    )
    try:
        with transaction.atomic():
            if Job.objects.filter(product=source.product,
                                  status__in=Job.ACTIVE_STATUSES).exists():
                raise JobError(_already_active(source.product))
            new = Job.objects.create(
                product=source.product, source_job=source, backend=backend,
                preset=source.preset, iterations=source.iterations,
                frame_count=opts.frame_count, frame_size=opts.frame_size,
                frame_rows=opts.frame_rows, frame_fill=opts.frame_fill,
                gpu_type=opts.gpu_type or "", estimated_cost=estimate.cost_usd, attempts=1,
                message="Waiting for the worker.", eta_seconds=round(estimate.total_seconds),
            )
            transaction.on_commit(lambda: job_enqueue(job=new))
    except IntegrityError:
        raise JobError(_already_active(source.product)) from None
    return new


def _already_active(product: Product) -> str:
    return (f"{product.name} already has a job queued or running; wait for it to finish "
            "or cancel it first.")


# --- one stage alone ------------------------------------------------------------------
# The stages an integrator may queue alone: every stage the engine runs.
ONE_STAGES = ENGINE_STAGES


def job_stage_queue(*, job: Job, stage: str, options: JobOptions | None = None) -> Job:
    """Queue `stage` of `job` alone (a new attempt, like a retry), for integrators who
    drive the stages themselves. `options` may change the training steps (train) or the
    frame settings (render); other fields are ignored. That stage's results and those of
    every later stage are marked stale."""
    if stage not in ONE_STAGES:
        raise JobError(f"Unknown stage {stage!r}: choose one of {', '.join(ONE_STAGES)}.")
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

    changes: dict[str, Any] = {}
    if options is not None and stage == "train" and options.iterations:
        changes["iterations"] = options.iterations
    if options is not None and stage == "render":
        resolved = JobOptions(preset=job.preset, frame_count=options.frame_count,
                              frame_size=options.frame_size, frame_rows=options.frame_rows,
                              frame_fill=options.frame_fill).resolved(job.backend)
        changes.update(frame_count=resolved.frame_count, frame_size=resolved.frame_size,
                       frame_rows=resolved.frame_rows, frame_fill=resolved.frame_fill)
    planned = list(job.planned_stages)
    for later in planned[planned.index(stage):]:
        changes[f"{later}_started_at"] = None
        changes[f"{later}_finished_at"] = None
    try:
        with transaction.atomic():
            if not job_requeue(
                    job=job, error="", stage_progress=0.0, eta_seconds=None,
                    finished_at=None, **changes,
                    message=f"Queued to run {Job.Stage(stage).label.lower()} only."):
                raise JobError("This job changed meanwhile; fetch it again and retry.")
            transaction.on_commit(lambda: job_enqueue(job=job, stage=stage))
    except IntegrityError:
        raise JobError(_already_active(job.product)) from None
    return job
