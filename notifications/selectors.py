"""Reads of notifications: a user's settings, endpoints and delivery log."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import NotificationSettings, WebhookDelivery, WebhookEndpoint

DELIVERY_LOG_LENGTH = 50


def notification_settings_get(*, user) -> NotificationSettings:
    """The user's settings; the defaults (unsaved) when they never changed them."""
    return (NotificationSettings.objects.filter(user=user).first()
            or NotificationSettings(user=user))


def wants_job_email(*, user) -> bool:
    """Whether a job's end is emailed to `user`: they have an address and did not opt out."""
    return bool(user.email) and notification_settings_get(user=user).email_on_job_finished


def endpoint_list(*, user) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(user=user)


def endpoint_get(*, user, pk: int) -> WebhookEndpoint:
    """The user's endpoint; 404 for anyone else's."""
    return get_object_or_404(endpoint_list(user=user), pk=pk)


def delivery_list(*, user, endpoint: WebhookEndpoint | None = None) \
        -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(endpoint__user=user).select_related(
        "event", "endpoint")
    return deliveries.filter(endpoint=endpoint) if endpoint is not None else deliveries
