"""Template filters for the job pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: float | int | None) -> str:
    """12 s, 3 min 20 s, 1 h 05 min: how long a stage took or has left."""
    if seconds is None or seconds == "":
        return "—"
    total = max(int(round(float(seconds))), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if minutes < 10 else f"{minutes} min"
    return f"{secs} s"
