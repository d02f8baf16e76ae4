from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.urls import reverse

from pipeline.engine.catalogue import RERENDER_STAGES, STAGE_NAMES, STAGES
from pipeline.engine.presets import DEFAULT_FILL_PERCENT
from products.models import Product


class Job(models.Model):
    """One run of the engine for a product: poses → training → frames → finalize."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    # Where the job is: pending, each stage of the catalogue (Job.Stage.COLMAP, …), done.
    Stage = models.TextChoices("Stage", [
        ("PENDING", ("pending", "Pending")),
        *((stage.name.upper(), (stage.name, stage.label)) for stage in STAGES.values()),
        ("DONE", ("done", "Done")),
    ])

    class Backend(models.TextChoices):
        LOCAL = "local", "This machine"
        MODAL = "modal", "Modal GPU"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    STAGES = tuple(map(Stage, STAGE_NAMES))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=16, choices=Status, default=Status.QUEUED)
    stage = models.CharField(max_length=16, choices=Stage, default=Stage.PENDING)
    stage_progress = models.FloatField(default=0.0)
    progress = models.FloatField("overall progress", default=0.0)
    message = models.CharField(max_length=500, blank=True)
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)

    backend = models.CharField(max_length=16, choices=Backend, default=Backend.LOCAL)
    preset = models.CharField(max_length=16, default="standard")
    # Training steps, worked out on the site when the job is created (those asked for, else
    # the preset's for the device it runs on) and always passed to the engine. Empty only on
    # a job from before they were stored that never trained.
    iterations = models.PositiveIntegerField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(default=1440)
    frame_size = models.PositiveIntegerField(default=1024)
    frame_rows = models.PositiveSmallIntegerField(default=1)
    frame_fill = models.PositiveSmallIntegerField(
        "product's share of the frame (%)", null=True, blank=True,
        default=DEFAULT_FILL_PERCENT,
        help_text="The product's widest silhouette over the orbit spans this share of the "
                  "frame's side. Empty: an earlier job, framed to the product's box.")
    gpu_type = models.CharField(max_length=16, blank=True)

    colmap_started_at = models.DateTimeField(null=True, blank=True)
    colmap_finished_at = models.DateTimeField(null=True, blank=True)
    train_started_at = models.DateTimeField(null=True, blank=True)
    train_finished_at = models.DateTimeField(null=True, blank=True)
    render_started_at = models.DateTimeField(null=True, blank=True)
    render_finished_at = models.DateTimeField(null=True, blank=True)
    finalize_started_at = models.DateTimeField(null=True, blank=True)
    finalize_finished_at = models.DateTimeField(null=True, blank=True)

    estimated_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    actual_cost = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    # Worker bookkeeping. `source_job` makes a render-only job from a kept model.
    source_job = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rerenders",
        help_text="The trained job whose model this render-only job reuses.",
    )
    task_id = models.CharField("queue task id", max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker running the job."
    )
    backend_state = models.JSONField(
        default=dict, blank=True,
        help_text="The running stage's handle for its backend (pid, Modal call id).",
    )
    stage_log = models.JSONField(
        default=list, blank=True,
        help_text="One entry per stage run: stage, attempt, start, end, outcome.",
    )
    metrics = models.JSONField(
        default=dict, blank=True,
        help_text="Per-stage results from the engine (photos placed, loss, frames).",
    )
    gpu_seconds = models.FloatField(default=0.0)
    comparison = models.JSONField(
        default=dict, blank=True,
        help_text="How faithful the spin is: a few photos beside renders from their own "
                  "cameras, their scores and the verdict (pipeline.comparison).",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "updated_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["product"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_job_per_product",
                violation_error_message="This product already has a job queued or running.",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0, progress__lte=1)
                & Q(stage_progress__gte=0, stage_progress__lte=1),
                name="job_progress_between_0_and_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.name}: {self.get_status_display()} ({self.get_stage_display()})"

    def get_absolute_url(self) -> str:
        return reverse("pipeline:job", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def is_render_only(self) -> bool:
        return self.source_job_id is not None

    @property
    def planned_stages(self) -> tuple[str, ...]:
        """The stages this job runs, in order: a re-render skips poses and training."""
        if self.is_render_only:
            return tuple(self.Stage(name) for name in RERENDER_STAGES)
        return self.STAGES

    def stage_times(self) -> list[tuple[str, object, object]]:
        """(stage, started_at, finished_at) for each planned stage."""
        return [
            (stage, getattr(self, f"{stage}_started_at"), getattr(self, f"{stage}_finished_at"))
            for stage in self.planned_stages
        ]


# The Video model lives with the rest of the videos; imported here so that the app's models
# (and its migrations, which name pipeline.models.public_frame_storage) stay as they were.
from pipeline.videos.models import Video, public_frame_storage  # noqa: E402

__all__ = ["Job", "Video", "public_frame_storage"]
