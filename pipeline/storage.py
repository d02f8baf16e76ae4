"""Where a job's results live on disk: public frames under FRAME_STORAGE_PATH, the kept
model and the private photo comparison under MODEL_STORAGE_PATH."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from pipeline.models import Job


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
