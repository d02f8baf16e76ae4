"""Reads of turntable videos: a job's videos, the job page's Video card, and which of its
frames a video shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from pipeline.delivery.storage import job_frames_relpath
from pipeline.jobs.selectors import finished_manifest
from pipeline.models import Job, Video


def video_list(*, job: Job) -> QuerySet[Video]:
    """The job's videos, oldest first. Visibility is the job's: callers get the job
    through pipeline.jobs.lookups.job_get_visible first."""
    return job.videos.all()


def video_card(*, job: Job) -> dict[str, Any]:
    """What the job page's Video card shows, but its form: the job's videos, whether one
    is being made, and where the page polls them and posts a request."""
    videos = list(video_list(job=job))
    return {"videos": videos, "active": any(v.is_active for v in videos),
            "poll_url": reverse("pipeline:videos", args=[job.pk]),
            "request_url": reverse("pipeline:video_request", args=[job.pk])}


def video_find(*, job: Job, fmt: str, background: str) -> Video | None:
    return video_list(job=job).filter(format=fmt, background=background).first()


def videos_in_flight(*, user) -> int:
    """How many of `user`'s videos are queued or being made (a lost one counts until it
    is queued again: it held its place in the queue)."""
    return Video.objects.filter(job__product__owner=user,
                                status__in=(Video.Status.QUEUED, Video.Status.RUNNING)).count()


def video_is_lost(video: Video) -> bool:
    """A running video whose progress stopped for JOB_STALE_AFTER_SECONDS: its worker
    died (progress is saved at least every few seconds while it encodes)."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS)
    return video.status == Video.Status.RUNNING and video.updated_at < cutoff


def video_frame_names(job: Job) -> list[str]:
    """Names in the frames storage of the frames a video of `job` shows: the row the
    viewer starts on (the sprite's row, pipeline.delivery.previews), in azimuth order as spin.json
    lists them. Empty when the job has no published frames."""
    manifest = finished_manifest(job)
    if not manifest or not manifest.get("frames"):
        return []
    frames = manifest["frames"]
    rows = sorted({int(f.get("row", 0)) for f in frames})
    sprite = manifest.get("sprite") or {}
    row = int(sprite.get("row", rows[len(rows) // 2]))
    if row not in rows:
        row = rows[len(rows) // 2]
    chosen = sorted((f for f in frames if int(f.get("row", 0)) == row),
                    key=lambda f: float(f.get("azimuth_deg", 0.0)))
    prefix = job_frames_relpath(job)
    return [f"{prefix}/{f['png']}" for f in chosen]
