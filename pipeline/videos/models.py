"""The Video model: a turntable video of a finished job (app "pipeline": pipeline.models
re-exports it)."""

from __future__ import annotations

import uuid

from django.core.files.storage import Storage
from django.db import models
from django.db.models import Q

from nerfsite.files import frame_storage


def public_frame_storage() -> Storage:
    """The "frames" storage: a video is published beside its job's frames, public and
    embeddable like them (and deleted with them)."""
    return frame_storage


class Video(models.Model):
    """A turntable video of a finished job, made on request by the worker
    (pipeline.videos.tasks). One per job, format and background: asking again for the
    same one returns this row."""

    class Format(models.TextChoices):
        MP4 = "mp4", "MP4 (H.264, over a background colour)"
        WEBM = "webm", "WebM (VP9, transparent)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Making"
        SUCCEEDED = "succeeded", "Ready"
        FAILED = "failed", "Failed"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey("pipeline.Job", on_delete=models.CASCADE, related_name="videos")
    format = models.CharField(max_length=8, choices=Format)
    background = models.CharField(
        max_length=7, blank=True,
        help_text="#rrggbb behind the frames (MP4); empty for WebM, which stays transparent.")
    status = models.CharField(max_length=16, choices=Status, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    file = models.FileField(storage=public_frame_storage, max_length=300, blank=True)
    size = models.PositiveBigIntegerField("bytes", null=True, blank=True)
    # Worker bookkeeping, as for jobs: each queueing is a new attempt, claimed once.
    attempts = models.PositiveSmallIntegerField(default=0)
    task_id = models.CharField("queue task id", max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(
        auto_now=True, help_text="Bumped by each progress save: a running video whose "
                                 "worker was lost stops changing.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "format", "background"],
                                    name="one_video_per_job_format_background"),
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1),
                                   name="video_progress_between_0_and_1"),
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} of {self.job_id}: {self.get_status_display()}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES
