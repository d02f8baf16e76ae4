"""Reads of notifications: a user's settings, endpoints and delivery log."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from .models import Event, NotificationSettings, WebhookDelivery, WebhookEndpoint

DELIVERY_LOG_LENGTH = 50
# A test event not delivered by then was lost (its endpoint deleted, the task dropped):
# it stops counting against the user.
TEST_EVENT_IN_FLIGHT_FOR = timedelta(minutes=10)


def notification_settings_get(*, user) -> NotificationSettings:
    """The user's settings; the defaults (unsaved) when they never changed them."""
    return (NotificationSettings.objects.filter(user=user).first()
            or NotificationSettings(user=user))


def wants_job_email(*, user) -> bool:
    """Whether a job's end is emailed to `user`: they have an address and did not opt out."""
    return bool(user.email) and notification_settings_get(user=user).email_on_job_finished


def endpoint_list(*, user) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(user=user)


def endpoint_count(*, user) -> int:
    return endpoint_list(user=user).count()


def test_events_in_flight(*, user) -> int:
    """The user's recent test events whose one attempt has not ended yet (queued, or
    being sent)."""
    done = (WebhookDelivery.Outcome.SUCCEEDED, WebhookDelivery.Outcome.FAILED)
    return (Event.objects.filter(user=user, type=Event.Type.TEST,
                                 created_at__gte=timezone.now() - TEST_EVENT_IN_FLIGHT_FOR)
            .exclude(deliveries__outcome__in=done).count())


def delivery_list(*, user, endpoint: WebhookEndpoint | None = None) \
        -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(endpoint__user=user).select_related(
        "event", "endpoint")
    return deliveries.filter(endpoint=endpoint) if endpoint is not None else deliveries
