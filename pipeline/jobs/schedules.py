"""The django-q2 schedules the pipeline needs, created (or corrected) after migrate."""

from __future__ import annotations

from typing import Any

SCHEDULES: dict[str, dict[str, Any]] = {
    "pipeline: recover stale jobs": {
        "func": "pipeline.jobs.recovery.recover_stale_jobs", "minutes": 1,
    },
    "pipeline: re-send lost job tasks": {
        "func": "pipeline.jobs.recovery.resend_lost_tasks", "minutes": 5,
    },
    "pipeline: clean up job workspaces": {
        "func": "pipeline.delivery.cleanup.cleanup_workspaces", "minutes": 60,
    },
    # products has no schedules of its own (it is a leaf app); its cleanup runs here.
    "products: delete upload files without a photo": {
        "func": "products.services.orphan_uploads_delete", "minutes": 60,
    },
}


def ensure_schedules(**_: Any) -> None:
    """Idempotent: one Schedule per name, with the func and interval above."""
    from django_q.models import Schedule

    for name, spec in SCHEDULES.items():
        schedule, created = Schedule.objects.get_or_create(
            name=name, defaults={"func": spec["func"], "schedule_type": Schedule.MINUTES,
                                 "minutes": spec["minutes"], "repeats": -1},
        )
        if not created and (schedule.func, schedule.minutes, schedule.schedule_type) != (
                spec["func"], spec["minutes"], Schedule.MINUTES):
            schedule.func, schedule.minutes = spec["func"], spec["minutes"]
            schedule.schedule_type, schedule.repeats = Schedule.MINUTES, -1
            schedule.save()
