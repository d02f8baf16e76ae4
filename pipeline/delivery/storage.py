"""Where a job's results live: public frames in the "frames" storage (settings.STORAGES: on
disk or in a public bucket), the kept model and the private photo comparison on disk under
MODEL_STORAGE_PATH."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage

from nerfsite.files import frame_storage
from pipeline.models import Job

MANIFEST = "manifest.json"
# A job publishes its frames once, when it succeeds, and a new render is a new job: under
# its name a file never changes, so browsers and CDNs may keep it for good. The manifest
# (and spin.json, made from it) is looked up by the job's URL and kept briefly.
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=300"


def frame_cache_control(name: str) -> str:
    """Cache-Control of a file in the frames storage, wherever it is served from."""
    return SHORT_CACHE if name.endswith(MANIFEST) else IMMUTABLE_CACHE


def job_frames_relpath(job: Job) -> str:
    """{product}/{job} in the frames storage: frames/, previews/, batches/, sprite.webp,
    manifest.json (pipeline.delivery.previews)."""
    return f"{job.product_id}/{job.pk}"


def job_frames_location(job: Job) -> str:
    """Where an operator finds the job's frames: their folder on disk, or their URL."""
    relpath = job_frames_relpath(job)
    try:
        return frame_storage.path(relpath)
    except NotImplementedError:  # a bucket has no local path
        return frame_storage.url(f"{relpath}/")


def publish_job_frames(job: Job, src: Path) -> None:
    """Copy the job's frames, built in the local folder `src`, into the frames storage,
    replacing what an earlier attempt left. The manifest goes last: while it is missing,
    the job has no frames to show."""
    prefix = job_frames_relpath(job)
    delete_job_frames(job)
    files = [p for p in sorted(src.rglob("*")) if p.is_file() and p.name != MANIFEST]
    for path in [*files, src / MANIFEST]:
        with path.open("rb") as fh:
            frame_storage.save(f"{prefix}/{path.relative_to(src).as_posix()}", File(fh))


def delete_job_frames(job: Job) -> None:
    """Remove everything the job published (nothing when it published nothing)."""
    delete_tree(frame_storage, job_frames_relpath(job))


def delete_tree(storage: Storage, prefix: str) -> None:
    """Delete every file under `prefix` through the storage API (a folder on disk, keys
    in a bucket)."""
    try:
        folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return
    for name in files:
        storage.delete(f"{prefix}/{name}")
    for folder in folders:
        delete_tree(storage, f"{prefix}/{folder}")
    # On disk this removes the emptied folder; a bucket has none (deleting is a no-op).
    storage.delete(prefix)


def job_model_dir(job: Job) -> Path:
    """MODEL_STORAGE_PATH/{product}/{job}/: the trained model kept for re-rendering."""
    return Path(settings.MODEL_STORAGE_PATH) / str(job.product_id) / str(job.pk)


def job_compare_dir(job: Job) -> Path:
    """MODEL_STORAGE_PATH/{product}/{job}/compare/: the photos beside their renders. Kept
    with the model, never with the frames: the photos are private, the frames public."""
    return job_model_dir(job) / "compare"
