"""The pages' and the API's lookups of one job: 404 for what the user may not see.
Apart from the selectors, which the worker imports too: the worker loads no HTTP code
(tests/site/test_architecture.py)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from pipeline.jobs.selectors import job_visible_list
from pipeline.models import Job


def job_get_visible(*, user, pk) -> Job:
    """The user's job (any for staff); 404 for everyone else's."""
    return get_object_or_404(job_visible_list(user=user), pk=pk)
