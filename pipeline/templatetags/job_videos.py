"""The job page's Video card: `{% load job_videos %}{% job_videos job as video %}`, then
`{% include "pipeline/_video_card.html" %}`. The same list is the card's poll answer
(pipeline.video_views.job_videos)."""

from __future__ import annotations

from typing import Any

from django import template

from pipeline.video_views import video_list_context

register = template.Library()


@register.simple_tag
def job_videos(job) -> dict[str, Any]:
    return video_list_context(job)
