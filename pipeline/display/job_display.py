"""What the job page shows: one bar per stage, the failure advice, the viewer's spin.json.

Kept apart from the views so the page, its live fragment and the tests share one reading
of a Job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from pipeline.costs import stage_log_cost
from pipeline.jobs import selectors
from pipeline.models import Job

# What a shop owner can do when a stage fails; the engine's own message comes first.
STAGE_ADVICE: dict[str, str] = {
    Job.Stage.COLMAP: (
        "The photos could not be put together. Take 20–100 photos walking all the way "
        "around the product, each one overlapping the last, in even light, with the "
        "product filling most of the frame; avoid plain, shiny or see-through backdrops. "
        "Then upload them and generate again."),
    Job.Stage.TRAIN: (
        "Training stopped. Retry: the job resumes from its last checkpoint. If it fails "
        "again, choose a smaller preset or fewer training steps."),
    Job.Stage.RENDER: (
        "Rendering stopped. Retry: the trained model is kept, so only the frames are made "
        "again. Fewer or smaller frames finish sooner."),
    Job.Stage.FINALIZE: (
        "The frames were made but could not be prepared for the viewer. Retry; if it "
        "repeats, check the free disk space on the server."),
}
GENERAL_ADVICE = "Retry the job; if it fails the same way again, contact support."


@dataclass(frozen=True)
class StageBar:
    key: str
    label: str
    state: str  # pending, running, done, failed, cancelled
    fraction: float
    seconds: float | None
    cost: Decimal | None
    started: datetime | None = None
    finished: datetime | None = None

    @property
    def percent(self) -> int:
        return int(round(self.fraction * 100))


def stage_bars(job: Job, now: datetime | None = None) -> list[StageBar]:
    """One bar per planned stage, with its state, fraction done, time taken and cost."""
    now = now or timezone.now()
    labels = dict(Job.Stage.choices)
    planned = list(job.planned_stages)
    current = planned.index(job.stage) if job.stage in planned else None
    stage_costs = _cost_by_stage(job)
    bars = []
    for i, (stage, started, finished) in enumerate(job.stage_times()):
        if finished is not None and (current is None or i < current
                                     or job.status == Job.Status.SUCCEEDED):
            state, fraction = "done", 1.0
        elif i == current:
            state = {Job.Status.RUNNING: "running", Job.Status.QUEUED: "pending",
                     Job.Status.FAILED: "failed", Job.Status.CANCELLED: "cancelled"
                     }.get(job.status, "done")
            fraction = 1.0 if state == "done" else job.stage_progress
        else:
            state, fraction = "pending", 0.0
        seconds = None
        if started is not None:
            end = finished if state == "done" else (now if state == "running" else None)
            seconds = (end - started).total_seconds() if end else None
        cost = None
        if state == "done":
            cost = stage_costs[stage] if job.backend != Job.Backend.LOCAL else Decimal("0")
        bars.append(StageBar(stage, labels[stage], state, fraction, seconds, cost,
                             started, finished))
    return bars


def _cost_by_stage(job: Job) -> dict[str, Decimal]:
    log = job.stage_log or []
    return {stage: stage_log_cost([e for e in log if e.get("stage") == stage],
                                  job.gpu_type or None)
            for stage in job.planned_stages}


def failure_advice(job: Job) -> str | None:
    """What to do about a failed job, from the stage it failed in."""
    if job.status != Job.Status.FAILED:
        return None
    return STAGE_ADVICE.get(job.stage, GENERAL_ADVICE)


def latest_messages(job: Job, limit: int = 5) -> list[str]:
    """The newest messages first: the current one, then how earlier stage runs ended."""
    lines = [job.message] if job.message else []
    labels = dict(Job.Stage.choices)
    for entry in reversed(job.stage_log or []):
        outcome = entry.get("outcome")
        if outcome == "running":
            continue
        text = f"{labels.get(entry.get('stage'), entry.get('stage'))}: {outcome}"
        if entry.get("error"):
            text += f" ({entry['error']})"
        lines.append(text)
    return lines[:limit]


# How each score of the comparison reads to a shop owner: its name, its words at the
# "faithful" and "fair" thresholds and below them (pipeline.engine.compare sets those and
# stores them with the comparison), and the number behind the words.
METRIC_WORDS: dict[str, tuple[str, tuple[str, str, str], Callable[[float], str]]] = {
    "alpha_iou": ("Outline", ("matches", "close", "differs"),
                  lambda v: f"{v:.0%} overlap"),
    "psnr": ("Colours", ("match closely", "roughly right", "differ"),
             lambda v: f"PSNR {v:.1f} dB"),
    "ssim": ("Detail", ("sharp", "soft", "lost"), lambda v: f"SSIM {v:.2f}"),
}


@dataclass(frozen=True)
class ComparedView:
    number: int
    photo: str
    """The name the photo was uploaded with."""
    photo_url: str
    render_url: str
    scores: list[tuple[str, str]]
    """(what, in words with the number) per score."""


def comparison_views(job: Job) -> list[ComparedView]:
    """The job's photos beside their renders, each score in words, for the job page; the
    images come from the owner-only view."""
    from django.urls import reverse

    comparison = job.comparison or {}
    thresholds = comparison.get("thresholds") or {}
    original = _original_names(job.product)
    return [ComparedView(
        n, original(view.get("photo", "")),
        reverse("pipeline:compare_image", args=[job.pk, n, "photo"]),
        reverse("pipeline:compare_image", args=[job.pk, n, "render"]),
        [score_in_words(key, view[key], thresholds) for key in METRIC_WORDS])
        for n, view in enumerate(comparison.get("views") or [], start=1)]


@dataclass(frozen=True)
class MaskView:
    number: int
    photo: str
    """The name the photo was uploaded with."""
    overlay_url: str
    coverage_percent: int
    flag: str | None
    advice: str


def mask_views(job: Job, original: Callable[[str], str]) -> list[MaskView]:
    """Each trained photo's mask over the photo, flagged ones first, for the product page;
    the images come from the owner-only view. `original` gives the uploaded names."""
    from django.urls import reverse

    views = [MaskView(n, original(mask.get("photo", "")),
                      reverse("pipeline:compare_image", args=[job.pk, n, "mask"]),
                      round(100 * mask.get("coverage", 0)), mask.get("flag"),
                      mask.get("advice", ""))
             for n, mask in enumerate((job.comparison or {}).get("masks") or [], start=1)]
    return sorted(views, key=lambda v: (v.flag is None, v.number))


def score_in_words(key: str, value: float, thresholds: dict[str, dict[str, float]]
                   ) -> tuple[str, str]:
    label, words, number = METRIC_WORDS[key]
    faithful = thresholds.get("faithful", {}).get(key)
    fair = thresholds.get("fair", {}).get(key)
    if faithful is None or fair is None:
        return label, number(value)
    word = words[0] if value >= faithful else words[1] if value >= fair else words[2]
    return label, f"{word} ({number(value)})"


def original_photo_name(job: Job) -> Callable[[str], str]:
    """Maps a photo name as the worker packed it to the name it was uploaded with."""
    return _original_names(job.product)


def product_showcase(product) -> dict[str, Any]:
    """For the product page: where the photos were taken (from the newest job whose pose
    stage ran, failed or not), the newest finished spin and its masks."""
    from django.urls import reverse

    from . import charts

    context: dict[str, Any] = {"camera_plot": None, "poses": None, "spin_job": None,
                               "spin_url": None, "masks": []}
    original = _original_names(product)
    for job in product.jobs.order_by("-created_at")[:20]:
        if context["poses"] is not None and context["spin_job"] is not None:
            break
        cameras = (job.metrics or {}).get("colmap", {}).get("cameras")
        if context["poses"] is None and cameras:
            unplaced = [{**c, "name": original(c.get("name", "")),
                         "reason": _uploaded_names_in(c.get("reason") or "", original)}
                        for c in cameras if not c.get("placed")]
            context["camera_plot"] = charts.camera_plot_svg({"images": cameras})
            context["poses"] = {"job": job, "placed": len(cameras) - len(unplaced),
                                "total": len(cameras), "unplaced": unplaced}
        if context["spin_job"] is None and job.status == Job.Status.SUCCEEDED \
                and selectors.read_manifest(job):
            context["spin_job"] = job
            context["spin_url"] = reverse("pipeline:spin", args=[job.pk])
            context["masks"] = mask_views(job, original)
    return context


# A photo name as the worker packs it, inside an engine's message ("retake it beside …").
_PACKED_NAME = re.compile(r"\b\d+_[0-9a-f]{8}\.\w+")


def _uploaded_names_in(text: str, original: Callable[[str], str]) -> str:
    return _PACKED_NAME.sub(lambda match: original(match[0]), text)


def _original_names(product) -> Callable[[str], str]:
    """Maps a photo name as the worker packed it (NNNN_<sha256[:8]>.ext) to the name it
    was uploaded with; other names stay as they are."""
    by_prefix = {sha[:8]: name for sha, name
                 in product.photos.values_list("sha256", "original_name")}

    def original(packed: str) -> str:
        match = re.match(r"^\d+_([0-9a-f]{8})", packed)
        return by_prefix.get(match[1], packed) if match else packed

    return original
