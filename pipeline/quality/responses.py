"""The comparison's images over HTTP, for the job page and the API (private: the callers
check the job is visible to the user first)."""

from __future__ import annotations

from django.http import FileResponse, Http404

from pipeline.models import Job
from pipeline.quality.comparison import image_path


def comparison_image(job: Job, number: int, kind: str) -> FileResponse:
    """The comparison image (kind "photo" or "render"), or mask `number`'s overlay (kind
    "mask"), as a private, cacheable response; 404 when there is none."""
    path = image_path(job, number, kind)
    if path is None:
        raise Http404("No such comparison image.")
    response = FileResponse(path.open("rb"))
    response["Cache-Control"] = "private, max-age=3600"
    return response
