"""Jobs: start, estimate, cancel, retry and re-render; where a job's results live.

Views, the admin, the REST API and management commands call these functions; they own
the transactions and the side effects (enqueueing the worker task, stopping a stage).
Every refusal raises JobError with a message meant for the shop owner.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import IntegrityError, transaction
from django.utils import timezone

from pipeline import costs
from pipeline.backends import BackendError, get_backend
from pipeline.engine.presets import PRESET_NAMES, get_preset
from pipeline.models import Job
from products.models import Photo, Product

log = logging.getLogger(__name__)

TASK = "pipeline.tasks.run_job"
MAX_ITERATIONS = 200_000
MAX_FRAME_COUNT = 10_000
MIN_FRAME_SIZE, MAX_FRAME_SIZE = 32, 4096
MAX_FRAME_ROWS = 9


class JobError(Exception):
    """A request about a job that cannot be done as asked; the message says why and what
    to do, and is safe to show to the user."""


@dataclass
class JobOptions:
    """What the user chooses for a job. None means the preset's default for the device
    the job runs on (e.g. 1440 frames on a GPU, a handful on a CPU)."""

    preset: str = "standard"
    iterations: int | None = None
    frame_count: int | None = None
    frame_size: int | None = None
    frame_rows: int = 1
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
        if self.gpu_type is not None and self.gpu_type not in costs.GPU_PRICES_PER_HOUR:
            raise JobError(f"Unknown GPU type {self.gpu_type!r}: choose one of "
                           f"{', '.join(costs.GPU_PRICES_PER_HOUR)}.")

    def resolved(self, backend: str) -> JobOptions:
        """A copy with the preset's defaults filled in for the backend's device."""
        device = costs.local_device() if backend == "local" else "cuda"
        preset = get_preset(self.preset, device)
        gpu_type = None if backend == "local" else (self.gpu_type or settings.GPU_TYPE)
        return JobOptions(
            preset=self.preset,
            iterations=self.iterations,
            frame_count=self.frame_count or preset.frames,
            frame_size=self.frame_size or preset.frame_size,
            frame_rows=self.frame_rows,
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
def usable_photos(product: Product) -> list[Photo]:
    """The product's photos whose files are on disk, in capture order."""
    return [p for p in product.photos.order_by("position", "id") if p.image and
            p.image.storage.exists(p.image.name)]


def min_photos() -> int:
    return settings.JOB_MIN_PHOTOS


def _check_photos(product: Product) -> int:
    count = len(usable_photos(product))
    if count < min_photos():
        raise JobError(
            f"This product has {count} usable photo{'s' if count != 1 else ''}; a 360° spin "
            f"needs at least {min_photos()}. Add photos taken all around the product, each "
            "overlapping the last, then try again."
        )
    return count


# --- estimates -----------------------------------------------------------------------
def default_backend() -> str:
    return settings.NERF_BACKEND


def estimate_job(product: Product, options: JobOptions, *,
                 backend: str | None = None) -> costs.Estimate:
    """Expected seconds per stage and cost (USD) of a job with these options."""
    backend = backend or default_backend()
    opts = options.resolved(backend)
    try:
        return costs.estimate(
            backend=backend, preset=opts.preset, photo_count=len(usable_photos(product)),
            frame_count=opts.frame_count, frame_size=opts.frame_size,
            frame_rows=opts.frame_rows, iterations=opts.iterations, gpu_type=opts.gpu_type,
        )
    except ValueError as exc:
        raise JobError(str(exc)) from None


# --- lifecycle -----------------------------------------------------------------------
def start_job(product: Product, options: JobOptions, *, backend: str | None = None,
              enqueue: bool = True) -> Job:
    """Create a queued Job for `product` and hand it to the worker.

    Refuses (JobError) when the product has too few usable photos or already has a job
    queued or running. With enqueue=False the caller runs it (`manage.py spin`).
    """
    backend = backend or default_backend()
    _check_photos(product)
    opts = options.resolved(backend)
    estimate = estimate_job(product, options, backend=backend)
    try:
        with transaction.atomic():
            if Job.objects.filter(product=product, status__in=Job.ACTIVE_STATUSES).exists():
                raise JobError(_already_active(product))
            job = Job.objects.create(
                product=product, backend=backend, preset=opts.preset,
                iterations=opts.iterations, frame_count=opts.frame_count,
                frame_size=opts.frame_size, frame_rows=opts.frame_rows,
                gpu_type=opts.gpu_type or "", estimated_cost=estimate.cost_usd,
                attempts=1, message="Waiting for the worker.",
                eta_seconds=round(estimate.total_seconds),
            )
            if enqueue:
                transaction.on_commit(lambda: _enqueue(job))
    except IntegrityError:  # a concurrent start won the race for the one active job
        raise JobError(_already_active(product)) from None
    return job


def cancel_job(job: Job) -> Job:
    """Stop a queued or running job. Its workspace stays, so it can be retried."""
    now = timezone.now()
    stopped = Job.objects.filter(pk=job.pk, status__in=Job.ACTIVE_STATUSES).update(
        status=Job.Status.CANCELLED, message="Cancelled.", eta_seconds=None,
        finished_at=now, updated_at=now,
    )
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


def retry_job(job: Job) -> Job:
    """Queue a failed or cancelled job again. It resumes at its first unfinished stage
    and reuses what the finished stages produced (poses, the trained model)."""
    if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
        raise JobError(f"Only a failed or cancelled job can be retried; this one is "
                       f"{job.get_status_display().lower()}.")
    resume_at = first_unfinished_stage(job)
    if resume_at == Job.Stage.COLMAP:
        _check_photos(job.product)
    now = timezone.now()
    try:
        with transaction.atomic():
            updated = Job.objects.filter(
                pk=job.pk, status__in=(Job.Status.FAILED, Job.Status.CANCELLED)
            ).update(
                status=Job.Status.QUEUED, attempts=job.attempts + 1, error="",
                message=f"Queued again: resumes at {Job.Stage(resume_at).label.lower()}.",
                stage_progress=0.0, eta_seconds=None, finished_at=None, heartbeat_at=None,
                backend_state={}, updated_at=now,
            )
            job.refresh_from_db()
            if not updated:
                raise JobError("This job changed meanwhile; reload the page and try again.")
            transaction.on_commit(lambda: _enqueue(job))
    except IntegrityError:
        raise JobError(_already_active(job.product)) from None
    return job


def rerender_job(job: Job, options: JobOptions) -> Job:
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
                      frame_rows=options.frame_rows,
                      gpu_type=options.gpu_type or source.gpu_type or None).resolved(backend)
    estimate = costs.estimate(
        backend=backend, preset=opts.preset, photo_count=0, frame_count=opts.frame_count,
        frame_size=opts.frame_size, frame_rows=opts.frame_rows, gpu_type=opts.gpu_type,
        stages=("render", "finalize"),
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
                frame_rows=opts.frame_rows, gpu_type=opts.gpu_type or "",
                estimated_cost=estimate.cost_usd, attempts=1,
                message="Waiting for the worker.", eta_seconds=round(estimate.total_seconds),
            )
            transaction.on_commit(lambda: _enqueue(new))
    except IntegrityError:
        raise JobError(_already_active(source.product)) from None
    return new


def first_unfinished_stage(job: Job) -> str:
    """The first planned stage without a recorded end (where a retry resumes)."""
    for stage in job.planned_stages:
        if getattr(job, f"{stage}_finished_at") is None:
            return stage
    return Job.Stage.FINALIZE


def _already_active(product: Product) -> str:
    return (f"{product.name} already has a job queued or running; wait for it to finish "
            "or cancel it first.")


def _enqueue(job: Job) -> None:
    from django_q.tasks import async_task

    try:
        task_id = async_task(TASK, str(job.pk), job.attempts, task_name=f"job-{job.pk}-"
                             f"{job.attempts}", group="jobs")
    except Exception as exc:  # the broker is down: do not leave the job queued forever
        log.exception("could not enqueue job %s", job.pk)
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.FAILED, finished_at=timezone.now(),
            error=f"The task queue is not reachable ({exc.__class__.__name__}); "
                  "try again in a minute.",
            message="Could not be queued.",
        )
        raise JobError("The task queue is not reachable right now; try again in a minute.") \
            from exc
    Job.objects.filter(pk=job.pk).update(task_id=str(task_id)[:64])
    job.task_id = str(task_id)[:64]


# --- where results live --------------------------------------------------------------
def frame_storage() -> FileSystemStorage:
    """Finished frames, previews and manifests, served at FRAME_URL."""
    return FileSystemStorage(location=settings.FRAME_STORAGE_PATH,
                             base_url=settings.FRAME_URL)


def job_frames_relpath(job: Job) -> str:
    return f"{job.product_id}/{job.pk}"


def job_frames_dir(job: Job) -> Path:
    """FRAME_STORAGE_PATH/{product}/{job}/: frames/, previews/, batches/, sprite.webp,
    manifest.json."""
    return Path(settings.FRAME_STORAGE_PATH) / job_frames_relpath(job)


def job_model_dir(job: Job) -> Path:
    """MODEL_STORAGE_PATH/{product}/{job}/: the trained model kept for re-rendering."""
    return Path(settings.MODEL_STORAGE_PATH) / str(job.product_id) / str(job.pk)


def job_compare_dir(job: Job) -> Path:
    """MODEL_STORAGE_PATH/{product}/{job}/compare/: the photos beside their renders. Kept
    with the model, never under FRAME_STORAGE_PATH: the photos are private, the frames
    public."""
    return job_model_dir(job) / "compare"


def model_is_kept(job: Job) -> bool:
    return (job_model_dir(job) / "model").is_dir()


def job_file_url(job: Job, relpath: str) -> str:
    """URL of a file under the job's frames folder, e.g. "previews/frame_0000.webp"."""
    return frame_storage().url(f"{job_frames_relpath(job)}/{relpath}")


def read_manifest(job: Job) -> dict[str, Any] | None:
    """The finished job's manifest (see pipeline.previews.write_site_manifest), or None.

    Paths in it are relative to the job's frames folder; `job_file_url` makes URLs.
    """
    path = job_frames_dir(job) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
