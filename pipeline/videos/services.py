"""Writes of turntable videos: a request (one row per job, format and background, queued
for the worker), and the worker's claim, progress, result and failure. Every write after
the claim is a compare-and-set on (status, attempts), as for jobs: a duplicate or stale
task delivery changes nothing."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from nerfsite.files import frame_storage
from pipeline.delivery.storage import job_frames_relpath
from pipeline.errors import JobError
from pipeline.jobs.selectors import finished_manifest
from pipeline.models import Job, Video
from pipeline.videos import selectors as video_selectors

log = logging.getLogger(__name__)

# Queued by this dotted path; tasks queued before the videos package name
# pipeline.video_tasks.make_video, which still answers (a shim).
TASK = "pipeline.videos.tasks.make_video"
DEFAULT_BACKGROUND = "#ffffff"
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def video_request(*, job: Job, fmt: str, background: str = DEFAULT_BACKGROUND) -> Video:
    """The job's video in `fmt` over `background` (#rrggbb; WebM has none: it stays
    transparent), queued for the worker unless it exists already. A failed video, or one
    whose worker was lost, is queued again. Raises JobError when the job has no frames."""
    if fmt not in Video.Format.values:
        raise JobError(f"A video is {' or '.join(Video.Format.values)}, not {fmt!r}.")
    if not COLOUR.match(background or ""):
        raise JobError(f"The background is a colour as #rrggbb, not {background!r}.")
    if finished_manifest(job) is None:
        raise JobError(f"This job has no frames to make a video from (it is {job.status}); "
                       "a video can be made once the job has succeeded.")
    background = background.lower() if fmt == Video.Format.MP4 else ""
    with transaction.atomic():
        video = video_selectors.video_find(job=job, fmt=fmt, background=background)
        if video is None or video.status == Video.Status.FAILED:
            check_room_in_queue(job)
        if video is None:
            try:
                with transaction.atomic():
                    video = Video.objects.create(job=job, format=fmt, background=background,
                                                 attempts=1)
            except IntegrityError:  # the same request, a moment earlier
                return video_selectors.video_find(job=job, fmt=fmt, background=background)
        elif video.status == Video.Status.FAILED or video_selectors.video_is_lost(video):
            if not Video.objects.filter(pk=video.pk, status=video.status,
                                        attempts=video.attempts).update(
                    status=Video.Status.QUEUED, progress=0.0, error="", finished_at=None,
                    attempts=video.attempts + 1, updated_at=timezone.now()):
                video.refresh_from_db()  # another request queued it meanwhile
                return video
            video.refresh_from_db()
        else:
            return video
        transaction.on_commit(lambda: video_enqueue(video=video))
    return video


def check_room_in_queue(job: Job) -> None:
    """JobError when the job's owner already has VIDEOS_IN_FLIGHT_PER_USER videos queued
    or being made: the worker is shared, and one user's hundred videos would hold up
    everyone's jobs and videos behind them."""
    limit = settings.VIDEOS_IN_FLIGHT_PER_USER
    if limit and video_selectors.videos_in_flight(user=job.product.owner) >= limit:
        raise JobError(f"You already have {limit} videos waiting or being made, the most "
                       "at once; ask for this one when one of them is ready.")


def video_enqueue(*, video: Video) -> None:
    """Send the worker task for the video's current attempt. A broker that cannot be
    reached fails the video with that reason rather than leaving it queued forever."""
    from django_q.tasks import async_task  # django_q reads its settings on import

    try:
        task_id = async_task(TASK, str(video.pk), video.attempts,
                             task_name=f"video-{video.pk}-{video.attempts}", group="videos")
    except Exception as exc:  # the broker is down
        log.exception("could not enqueue video %s", video.pk)
        video_fail(video=video, reason=f"The task queue is not reachable "
                                       f"({exc.__class__.__name__}); try again in a minute.",
                   status=Video.Status.QUEUED)
        return
    Video.objects.filter(pk=video.pk).update(task_id=str(task_id)[:64])


def video_claim(*, video_id: str, attempt: int) -> Video | None:
    """queued → running for this attempt; None when another delivery has it, or when the
    video was queued again since (a newer attempt)."""
    if not Video.objects.filter(pk=video_id, status=Video.Status.QUEUED,
                                attempts=attempt).update(
            status=Video.Status.RUNNING, progress=0.0, updated_at=timezone.now()):
        return None
    return Video.objects.select_related("job", "job__product").get(pk=video_id)


def _running(video: Video):
    return Video.objects.filter(pk=video.pk, status=Video.Status.RUNNING,
                                attempts=video.attempts)


def video_save_progress(*, video: Video, progress: float) -> bool:
    """Record how far the encoding is (0–1); False when this run no longer owns it."""
    return bool(_running(video).update(progress=min(max(progress, 0.0), 1.0),
                                       updated_at=timezone.now()))


def video_file_name(video: Video) -> str:
    """{product}/{job}/videos/{video}.{format} in the frames storage: beside the job's
    frames, so it is public and embeddable like them and goes when they go. The video's
    random id keeps the name unique, so the file never changes under it."""
    return f"{job_frames_relpath(video.job)}/videos/{video.pk}.{video.format}"


def video_publish(*, video: Video, path: Path) -> bool:
    """Copy the encoded file into the frames storage and mark the video ready. False when
    this run no longer owns the video (the newer run writes the same name)."""
    with path.open("rb") as fh:
        name = frame_storage.save(video_file_name(video), File(fh))
    return bool(_running(video).update(
        status=Video.Status.SUCCEEDED, progress=1.0, file=name, size=path.stat().st_size,
        error="", finished_at=timezone.now(), updated_at=timezone.now()))


def video_fail(*, video: Video, reason: str, status: str = Video.Status.RUNNING) -> bool:
    """`status` (running, or queued when it never reached the worker) → failed, with the
    reason the user reads."""
    return bool(Video.objects.filter(pk=video.pk, status=status,
                                     attempts=video.attempts).update(
        status=Video.Status.FAILED, error=reason, finished_at=timezone.now(),
        updated_at=timezone.now()))
