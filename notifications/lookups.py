"""The pages' and the API's lookups of one webhook endpoint: 404 for what the user may not see.
Apart from the selectors, which the worker imports too: the worker loads no HTTP code
(tests/site/test_architecture.py)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from .models import WebhookEndpoint
from .selectors import endpoint_list


def endpoint_get(*, user, pk: int) -> WebhookEndpoint:
    """The user's endpoint; 404 for anyone else's."""
    return get_object_or_404(endpoint_list(user=user), pk=pk)
