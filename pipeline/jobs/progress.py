"""Progress and time-left arithmetic for a job's page: pure functions of the planned
stages, the running stage's progress.json and the estimate, so they are tested without a
Job row or a worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeline.engine.catalogue import STAGE_WEIGHTS


def overall_fraction(planned: Sequence[str], stage: str, fraction: float) -> float:
    """The whole job's fraction done when `stage` is `fraction` done: the planned stages'
    weights, scaled so a render-only job also ends at 1."""
    total = sum(STAGE_WEIGHTS[s] for s in planned)
    before = sum(STAGE_WEIGHTS[s] for s in planned[:planned.index(stage)])
    return round(min((before + STAGE_WEIGHTS[stage] * fraction) / total, 1.0), 4)


def seconds_left(planned: Sequence[str], stage: str, fraction: float,
                 estimate: Mapping[str, float], stage_eta: float | None = None) -> int:
    """The stage's own ETA (or the rest of its estimate) plus the estimates of the later
    stages."""
    later = sum(estimate.get(s, 0.0) for s in planned[planned.index(stage) + 1:])
    if stage_eta is None:
        stage_eta = estimate.get(stage, 0.0) * (1 - fraction)
    return round(float(stage_eta) + later)


def doc_of_this_run(doc: Mapping[str, Any] | None, stage: str,
                    started: datetime) -> Mapping[str, Any] | None:
    """progress.json when this run of `stage` wrote it, not a previous stage or attempt."""
    if not doc or doc.get("stage") != stage:
        return None
    try:
        written = datetime.fromisoformat(doc["updated_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return doc if written >= started else None


def progress_fields(planned: Sequence[str], stage: str, doc: Mapping[str, Any] | None,
                    estimate: Mapping[str, float]) -> dict[str, Any]:
    """The Job fields a progress.json document updates ({} when there is none)."""
    if doc is None:
        return {}
    fraction = min(max(float(doc.get("stage_progress") or 0.0), 0.0), 1.0)
    fields: dict[str, Any] = {
        "stage_progress": fraction,
        "progress": overall_fraction(planned, stage, fraction),
        "eta_seconds": seconds_left(planned, stage, fraction, estimate,
                                    doc.get("eta_seconds")),
    }
    if doc.get("message"):
        fields["message"] = str(doc["message"])
    return fields
