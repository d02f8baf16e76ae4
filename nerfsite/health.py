"""/healthz: 200 only when the database and the task broker both answer."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not healthy"
        return f"database: {exc}"
    return None


def check_broker() -> str | None:
    from django_q.brokers import get_broker

    try:
        broker = get_broker()
        if broker.ping() is False:
            return f"broker: {type(broker).__name__} did not answer"
        # The ORM broker's ping is always true: reading the queue size touches its table.
        broker.queue_size()
    except Exception as exc:
        return f"broker: {exc}"
    return None


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    problems = [p for p in (check_database(), check_broker()) if p]
    if problems:
        log.warning("health check failed", extra={"problems": "; ".join(problems)})
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    return JsonResponse({"status": "ok"})
