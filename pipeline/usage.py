"""Jobs, GPU minutes and cost per month and per GPU type (the usage page, API and admin)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth

from .models import Job

CENT_HUNDREDTHS = Decimal("0.0001")


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


def totals(rows: list[UsageRow]) -> dict:
    return {"jobs": sum(r.jobs for r in rows),
            "gpu_minutes": round(sum(r.gpu_minutes for r in rows), 1),
            "cost_usd": sum((r.cost_usd for r in rows), Decimal("0"))}
