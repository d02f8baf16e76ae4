"""The job page's Video card: `{% load job_videos %}{% job_videos job as video %}`, then
`{% include "pipeline/_video_card.html" %}`. It reads the card's selector
(pipeline.videos.selectors.video_card), as the card's poll view does."""

from __future__ import annotations

from typing import Any

from django import template

from pipeline.videos.forms import VideoForm
from pipeline.videos.selectors import video_card

register = template.Library()


@register.simple_tag
def job_videos(job) -> dict[str, Any]:
    return {"form": VideoForm(), **video_card(job=job)}
