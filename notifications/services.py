"""Writes and side effects of notifications: settings, endpoints, events, and sending."""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from nerfsite.mail import send_templated_mail
from pipeline.models import Job

from . import payloads, selectors, webhooks
from .models import Event, NotificationSettings, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

DELIVER_TASK = "notifications.tasks.deliver_webhook"
FIRST_ATTEMPTS_TASK = "notifications.tasks.deliver_first_attempts"
EMAIL_TASK = "notifications.tasks.send_job_email"
SECRET_PREFIX = "whsec_"
JOB_EVENTS = {Job.Status.SUCCEEDED: Event.Type.JOB_SUCCEEDED,
              Job.Status.FAILED: Event.Type.JOB_FAILED}


class NotificationError(ValueError):
    """A refused request, with a message for the user."""


class NotificationLimit(NotificationError):
    """Refused because the user already has as much as one user may (endpoints, test
    events on their way): the worker that sends them is shared by everyone."""


# --- settings and endpoints -------------------------------------------------------------
def notification_settings_update(*, user, email_on_job_finished: bool) -> None:
    NotificationSettings.objects.update_or_create(
        user=user, defaults={"email_on_job_finished": email_on_job_finished})


def webhook_endpoint_create(*, user, url: str, description: str = "") \
        -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned to be shown once). The URL must be
    http(s) and resolve only to public addresses; delivery checks that again each time."""
    limit = settings.WEBHOOK_ENDPOINTS_PER_USER
    if limit and selectors.endpoint_count(user=user) >= limit:
        raise NotificationLimit(f"You have {limit} webhook endpoints, the most allowed; "
                                "delete one before adding another.")
    url = url.strip()
    try:
        _, host, port = webhooks.check_url(url)
        webhooks.resolve(host, port)
    except webhooks.UnsafeUrl as exc:
        raise NotificationError(str(exc)) from exc
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(user=user, url=url, description=description.strip(),
                               secret=secret)
    endpoint.full_clean()
    endpoint.save()
    return endpoint, secret


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """The endpoint and its delivery log; retries still scheduled find it gone and stop."""
    endpoint.delete()


# --- events -----------------------------------------------------------------------------
def _record_event(*, user, type: str, data: dict, job: Job | None = None) -> Event:
    event = Event(user=user, type=type, job=job, payload={})
    event.payload = payloads.envelope(event_id=str(event.pk), type=type, data=data)
    event.save()
    return event


def _enqueue_delivery(event_id: str, endpoint_id: int, attempt: int = 1) -> None:
    from django_q.tasks import async_task  # django_q reads its settings on import

    async_task(DELIVER_TASK, event_id, endpoint_id, attempt,
               task_name=f"webhook-{event_id}-{endpoint_id}-{attempt}", group="webhooks")


def _enqueue_first_attempts(event_id: str, endpoint_ids: list[int]) -> None:
    from django_q.tasks import async_task

    if len(endpoint_ids) == 1:
        _enqueue_delivery(event_id, endpoint_ids[0])
    else:
        async_task(FIRST_ATTEMPTS_TASK, event_id, endpoint_ids,
                   task_name=f"webhooks-{event_id}-{endpoint_ids[0]}", group="webhooks")


def webhook_first_attempts(*, event_id: str, endpoint_ids: list[int]) -> None:
    """The first attempts of one event to several endpoints, one at a time: deliver to
    the first, then queue a task for the rest, which goes behind every task queued
    meanwhile. However many endpoints a user has and however slow they are, their
    deliveries hold one worker at a time, and everyone else's jobs and videos go between
    them. (Retries are one-off schedules per endpoint, spread out by their backoff.)

    A fallback schedule for the rest is made before sending and deleted once the rest is
    queued: if this worker dies mid-send, the scheduler carries on with the others."""
    from django_q.models import Schedule
    from django_q.tasks import schedule

    first, rest = endpoint_ids[0], endpoint_ids[1:]
    fallback = f"webhooks {event_id} after {first}"
    if rest:
        schedule(FIRST_ATTEMPTS_TASK, event_id, rest, name=fallback,
                 schedule_type=Schedule.ONCE, repeats=-1,
                 next_run=timezone.now() + timedelta(
                     seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 60))
    webhook_deliver(event_id=event_id, endpoint_id=first, attempt=1)
    if rest:
        _enqueue_first_attempts(event_id, rest)
        Schedule.objects.filter(name=fallback).delete()


@transaction.atomic
def job_event_record(*, job_id: str, status: str) -> Event:
    """The event of a job that has just succeeded or failed, then (after commit) its
    deliveries (webhook_first_attempts) and the owner's email, worker tasks."""
    from django_q.tasks import async_task

    job = Job.objects.select_related("product__owner").get(pk=job_id)
    owner = job.product.owner
    event = _record_event(user=owner, type=JOB_EVENTS[status], data=payloads.job_data(job),
                          job=job)
    endpoints = list(owner.webhook_endpoints.all())
    email = selectors.wants_job_email(user=owner)

    def enqueue() -> None:
        if endpoints:
            _enqueue_first_attempts(str(event.pk), [e.pk for e in endpoints])
        if email:
            async_task(EMAIL_TASK, str(event.pk), task_name=f"email-{event.pk}",
                       group="notifications")

    transaction.on_commit(enqueue)
    return event


def webhook_test_send(*, endpoint: WebhookEndpoint) -> Event:
    """A test event to this endpoint alone, sent once by the worker (no retries: the user
    is watching the log). At most WEBHOOK_TESTS_IN_FLIGHT_PER_USER (1) on their way at
    once: each may hold a worker for WEBHOOK_TIMEOUT_SECONDS, and with one at a time a
    user's slow receiver holds one worker at most, never all of them."""
    limit = settings.WEBHOOK_TESTS_IN_FLIGHT_PER_USER
    if limit and selectors.test_events_in_flight(user=endpoint.user) >= limit:
        waiting = ("A test event is still on its way" if limit == 1
                   else f"{limit} test events are still on their way")
        raise NotificationLimit(f"{waiting}; wait until the delivery log shows how it went, "
                                "then send another.")
    event = _record_event(user=endpoint.user, type=Event.Type.TEST,
                          data=payloads.test_data(endpoint.url))
    transaction.on_commit(lambda: _enqueue_delivery(str(event.pk), endpoint.pk))
    return event


# --- sending (run by the worker, notifications.tasks) -----------------------------------
def retry_delay(attempt: int) -> timedelta:
    """The wait after failed attempt `attempt`: BASE × 4^(attempt-1)."""
    return timedelta(seconds=settings.WEBHOOK_RETRY_BASE_SECONDS * 4 ** (attempt - 1))


def max_attempts(event: Event) -> int:
    return 1 if event.type == Event.Type.TEST else settings.WEBHOOK_MAX_ATTEMPTS


def webhook_deliver(*, event_id: str, endpoint_id: int, attempt: int) -> WebhookDelivery | None:
    """Attempt `attempt` of one event to one endpoint: claim it (a second delivery of the
    same task does nothing), POST it signed and record the answer. None when there is
    nothing to do."""
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    event = Event.objects.filter(pk=event_id).first()
    if endpoint is None or event is None:  # deleted meanwhile
        return None
    retry_at = (timezone.now() + retry_delay(attempt)
                if attempt < max_attempts(event) else None)
    try:
        with transaction.atomic():
            # The next attempt is scheduled with the claim, before anything is sent, so a
            # worker that dies mid-request still leaves it; a success cancels it.
            delivery = WebhookDelivery.objects.create(event=event, endpoint=endpoint,
                                                      attempt=attempt,
                                                      next_attempt_at=retry_at)
            if retry_at is not None:
                _schedule_retry(delivery)
    except IntegrityError:
        log.info("webhook %s to endpoint %s attempt %s already made", event_id,
                 endpoint_id, attempt)
        return None
    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False).encode()
    result = webhooks.post(endpoint.url, body, {
        webhooks.SIGNATURE_HEADER: webhooks.sign(endpoint.secret, int(time.time()), body),
        "Spin-Event-Id": str(event.pk), "Spin-Event-Type": event.type,
        "Spin-Delivery-Attempt": str(attempt)})
    delivery.status_code, delivery.error = result.status_code, result.error
    delivery.duration_ms = result.duration_ms
    delivery.outcome = (WebhookDelivery.Outcome.SUCCEEDED if result.ok
                        else WebhookDelivery.Outcome.FAILED)
    if result.ok and retry_at is not None:
        _cancel_retry(delivery)
        delivery.next_attempt_at = None
    delivery.save()
    return delivery


def _retry_name(delivery: WebhookDelivery) -> str:
    return f"webhook {delivery.event_id} → {delivery.endpoint_id} #{delivery.attempt + 1}"


def _schedule_retry(delivery: WebhookDelivery) -> None:
    """A one-off django-q2 schedule for the next attempt; the worker's scheduler runs it
    when it is due (it looks every 30 s) and deletes it."""
    from django_q.models import Schedule
    from django_q.tasks import schedule

    schedule(DELIVER_TASK, str(delivery.event_id), delivery.endpoint_id, delivery.attempt + 1,
             name=_retry_name(delivery), schedule_type=Schedule.ONCE, repeats=-1,
             next_run=delivery.next_attempt_at)


def _cancel_retry(delivery: WebhookDelivery) -> None:
    from django_q.models import Schedule

    Schedule.objects.filter(name=_retry_name(delivery)).delete()


def job_email_send(*, event_id: str) -> bool:
    """The job's email to its owner, at most once: the event is marked before sending, so
    a second delivery of the task sends nothing (a failed send is django-q2's failed task,
    not a second email). False when nothing was sent."""
    event = Event.objects.select_related("user").filter(pk=event_id).first()
    if event is None or not selectors.wants_job_email(user=event.user):
        return False
    if not Event.objects.filter(pk=event_id, emailed_at__isnull=True).update(
            emailed_at=timezone.now()):
        return False
    context = {"event": event, "data": event.payload["data"],
               "succeeded": event.type == Event.Type.JOB_SUCCEEDED,
               "settings_url": payloads.absolute(reverse("notifications:settings"))}
    send_templated_mail("notifications/email/job_finished", context, event.user.email)
    return True
