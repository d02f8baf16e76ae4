"""What a user is told when a job ends: an email (a per-user setting) and webhooks, with
one row per delivery attempt."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class NotificationSettings(models.Model):
    """A user's choices; a user without a row has the defaults."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                primary_key=True, related_name="notification_settings")
    email_on_job_finished = models.BooleanField(
        "email me when a job ends", default=True,
        help_text="An email when a job succeeds or fails.")

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"Notifications of {self.user}"


class WebhookEndpoint(models.Model):
    """A URL of the user's that receives job events, signed with the endpoint's secret."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="webhook_endpoints")
    url = models.URLField("URL", max_length=500)
    description = models.CharField(max_length=100, blank=True)
    # Kept in the clear: signing needs it. Shown to the user once, when it is made.
    secret = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class Event(models.Model):
    """Something that happened to a user's job, as sent to their endpoints."""

    class Type(models.TextChoices):
        JOB_SUCCEEDED = "job.succeeded", "Job succeeded"
        JOB_FAILED = "job.failed", "Job failed"
        TEST = "webhook.test", "Test event"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="notification_events")
    type = models.CharField(max_length=32, choices=Type)
    job = models.ForeignKey("pipeline.Job", on_delete=models.SET_NULL, null=True,
                            blank=True, related_name="events")
    payload = models.JSONField(help_text="The JSON body every endpoint receives.")
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the job email went out (sent once).")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.pk}"


class WebhookDelivery(models.Model):
    """One attempt to deliver one event to one endpoint."""

    class Outcome(models.TextChoices):
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome, default=Outcome.SENDING)
    status_code = models.PositiveSmallIntegerField("HTTP status", null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next attempt is due; empty when none is.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-attempt"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # A task delivered twice claims its attempt once: the second one does nothing.
            models.UniqueConstraint(fields=["event", "endpoint", "attempt"],
                                    name="one_row_per_delivery_attempt"),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} → {self.endpoint} #{self.attempt}: {self.outcome}"
