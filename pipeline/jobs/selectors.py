"""Reads of jobs: who sees which, where a retry resumes, what a finished job produced
(manifest and frame URLs) and usage per month. Nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    DecimalField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncMonth

from nerfsite.files import frame_storage
from pipeline.delivery.storage import MANIFEST, job_frames_relpath, job_model_dir
from pipeline.engine.workspace import MODEL_DIR
from pipeline.models import Job

CENT_HUNDREDTHS = Decimal("0.0001")


# --- who sees which ---------------------------------------------------------------------
def job_visible_list(*, user) -> QuerySet[Job]:
    """The product's owner sees its jobs; staff see all; anyone else none."""
    qs = Job.objects.select_related("product", "product__owner")
    if not user.is_authenticated:
        return qs.none()
    return qs if user.is_staff else qs.filter(product__owner=user)


# --- stages -----------------------------------------------------------------------------
def first_unfinished_stage(job: Job,
                           has_outputs: Callable[[str], bool] | None = None) -> str:
    """Where a retry resumes: the first planned stage without a recorded end, or whose
    results are gone (`has_outputs`, when the caller can look at the workspace)."""
    for stage in job.planned_stages:
        if getattr(job, f"{stage}_finished_at") is None:
            return stage
        if has_outputs is not None and stage != Job.Stage.FINALIZE and not has_outputs(stage):
            return stage
    return Job.Stage.FINALIZE


def min_photos() -> int:
    """Usable photos a job needs (JOB_MIN_PHOTOS)."""
    return settings.JOB_MIN_PHOTOS


def model_is_kept(job: Job) -> bool:
    return (job_model_dir(job) / MODEL_DIR).is_dir()


def latest_job_annotations() -> dict[str, Any]:
    """The product's newest job, for ProductQuerySet.with_summary()."""
    latest = Job.objects.filter(product=OuterRef("pk")).order_by("-created_at")
    return {
        "latest_job_id": Subquery(latest.values("pk")[:1]),
        "latest_job_status": Subquery(latest.values("status")[:1]),
        "latest_job_progress": Subquery(latest.values("progress")[:1]),
    }


# --- results ----------------------------------------------------------------------------
def job_file_url(job: Job, relpath: str) -> str:
    """URL of a file under the job's frames folder, e.g. "previews/frame_0000.webp"."""
    return frame_storage.url(f"{job_frames_relpath(job)}/{relpath}")


def read_manifest(job: Job) -> dict[str, Any] | None:
    """The job's published manifest (see pipeline.delivery.previews.build_site_frames), or None.

    Paths in it are relative to the job's frames folder; `manifest_urls` makes URLs.
    """
    try:
        with frame_storage.open(f"{job_frames_relpath(job)}/{MANIFEST}", "rb") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def finished_manifest(job: Job) -> dict[str, Any] | None:
    """The manifest of a succeeded job; None before it succeeds or when it is gone."""
    return read_manifest(job) if job.status == Job.Status.SUCCEEDED else None


@dataclass(frozen=True)
class FrameUrls:
    """Every URL of a finished job's frames, from its manifest."""

    width: int | None
    height: int | None
    rows: int
    sprite: dict[str, Any] | None
    """The manifest's sprite entry with its `url`."""
    batches: list[dict[str, Any]]
    """name, url, bytes per zip."""
    frames: list[dict[str, Any]]
    """The manifest's frame entries with `url` (PNG) and `preview_url` (WebP)."""


def manifest_urls(job: Job, manifest: dict[str, Any],
                  absolute: Callable[[str], str] = str) -> FrameUrls:
    """The manifest's relative paths as URLs; `absolute` turns a path into a full URL
    (the API's request.build_absolute_uri)."""
    def url(relpath: str) -> str:
        return absolute(job_file_url(job, relpath))

    sprite = manifest.get("sprite") or None
    return FrameUrls(
        width=manifest.get("width"), height=manifest.get("height"),
        rows=int(manifest.get("rows", 1)),
        sprite={**sprite, "url": url(sprite["file"])} if sprite and sprite.get("file")
        else None,
        batches=[{"name": b["file"].rsplit("/", 1)[-1], "url": url(b["file"]),
                  "bytes": b["bytes"]} for b in manifest.get("batches", [])],
        frames=[{**f, "url": url(f["png"]), "preview_url": url(f["preview"])}
                for f in manifest.get("frames", [])],
    )


# --- usage ------------------------------------------------------------------------------
@dataclass(frozen=True)
class UsageRow:
    month: date
    gpu_type: str
    """The Modal GPU type, or "local" for jobs run on the worker's own machine."""
    jobs: int
    succeeded: int
    failed: int
    gpu_minutes: float
    cost_usd: Decimal


def usage_rows(jobs: QuerySet[Job]) -> list[UsageRow]:
    """One row per month and GPU type, newest month first. Cost is what finished jobs
    cost (actual_cost); jobs still running count towards `jobs` only."""
    rows = (
        jobs.order_by()
        .annotate(month=TruncMonth("created_at"))
        .values("month", "backend", "gpu_type")
        .annotate(
            n=Count("pk"),
            ok=Count("pk", filter=Q(status=Job.Status.SUCCEEDED)),
            bad=Count("pk", filter=Q(status=Job.Status.FAILED)),
            gpu_s=Coalesce(Sum("gpu_seconds"), 0.0),
            cost=Coalesce(Sum("actual_cost"), Value(Decimal("0")),
                          output_field=DecimalField(max_digits=12, decimal_places=4)),
        )
        .order_by("-month", "backend", "gpu_type")
    )
    merged: dict[tuple[date, str], UsageRow] = {}
    for r in rows:
        month = r["month"].date() if hasattr(r["month"], "date") else r["month"]
        kind = r["gpu_type"] if r["backend"] != Job.Backend.LOCAL and r["gpu_type"] else "local"
        prev = merged.get((month, kind))
        row = UsageRow(month=month, gpu_type=kind, jobs=r["n"], succeeded=r["ok"],
                       failed=r["bad"], gpu_minutes=round(float(r["gpu_s"]) / 60, 1),
                       cost_usd=Decimal(r["cost"]).quantize(CENT_HUNDREDTHS))
        if prev:  # local jobs may carry different gpu_type strings; they are one kind here
            row = UsageRow(month, kind, prev.jobs + row.jobs, prev.succeeded + row.succeeded,
                           prev.failed + row.failed,
                           round(prev.gpu_minutes + row.gpu_minutes, 1),
                           prev.cost_usd + row.cost_usd)
        merged[(month, kind)] = row
    return list(merged.values())


def usage_totals(rows: Iterable[UsageRow]) -> dict[str, Any]:
    rows = list(rows)
    return {"jobs": sum(r.jobs for r in rows),
            "gpu_minutes": round(sum(r.gpu_minutes for r in rows), 1),
            "cost_usd": sum((r.cost_usd for r in rows), Decimal("0"))}


def job_usage(*, user=None, jobs: QuerySet[Job] | None = None) -> dict[str, Any]:
    """Usage rows and totals of the user's visible jobs (or of `jobs`)."""
    rows = usage_rows(jobs if jobs is not None else job_visible_list(user=user))
    return {"rows": rows, **usage_totals(rows)}
