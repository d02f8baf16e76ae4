"""django-q2 tasks: plain functions, queued by their dotted path."""

from __future__ import annotations

from . import services


def deliver_webhook(event_id: str, endpoint_id: int, attempt: int) -> str:
    delivery = services.webhook_deliver(event_id=event_id, endpoint_id=endpoint_id,
                                        attempt=attempt)
    return delivery.outcome if delivery else "skipped"


def deliver_first_attempts(event_id: str, endpoint_ids: list[int]) -> None:
    services.webhook_first_attempts(event_id=event_id, endpoint_ids=endpoint_ids)


def send_job_email(event_id: str) -> bool:
    return services.job_email_send(event_id=event_id)
