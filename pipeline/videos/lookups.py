"""The pages' and the API's lookups of one video: 404 for what the user may not see.
Apart from the selectors, which the worker imports too: the worker loads no HTTP code
(tests/site/test_architecture.py)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from pipeline.models import Job, Video
from pipeline.videos.selectors import video_list


def video_get(*, job: Job, pk) -> Video:
    """One of the job's videos; 404 for any other id."""
    return get_object_or_404(video_list(job=job), pk=pk)
