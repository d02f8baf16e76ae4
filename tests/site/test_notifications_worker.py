"""Through a real django-q2 worker (`manage.py qcluster`) on the test database: a failed
job's webhook reaches a real HTTP receiver, is answered 500, and the worker's own scheduler
sends it again; the job email goes out once."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from notifications import services
from notifications.models import Event, WebhookDelivery
from pipeline.jobs import transitions
from pipeline.models import Job
from products.models import Product
from tests.conftest import wait_for
from tests.site.webhook_receiver import receiver

__all__ = ["receiver"]
# Transactional, declared here: the worker reads what this test commits.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def worker_env(worker_env, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    # The event is made where the job ends (here), so its URLs follow this process's
    # SITE_URL; the worker sends it as it is.
    settings.SITE_URL = "https://spins.example.com"
    return {**worker_env, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_RETRY_BASE_SECONDS": "1", "EMAIL_URL": "memory://"}


def test_the_worker_delivers_retries_and_emails(worker_env, receiver, django_user_model,
                                                qcluster):
    owner = django_user_model.objects.create_user("shop", email="shop@example.com")
    product = Product.objects.create(owner=owner, name="Teapot", sku="TEA-1")
    endpoint, secret = services.webhook_endpoint_create(user=owner, url=receiver.url)
    receiver.statuses = [500, 204]
    job = Job.objects.create(product=product, status=Job.Status.RUNNING, attempts=1)
    assert transitions.job_fail(job_id=str(job.pk), attempt=1, reason="Out of memory.")

    # The retry is due a second later; the worker's scheduler looks every 30 s.
    second = wait_for(lambda: WebhookDelivery.objects.filter(
        attempt=2, outcome="succeeded").first(), timeout=150, interval=1,
        what="the worker's second attempt")
    first = WebhookDelivery.objects.get(attempt=1)
    assert (first.outcome, first.status_code, second.status_code) == ("failed", 500, 204)
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        t, v1 = (part.split("=", 1)[1] for part in
                 request.headers["Spin-Signature"].split(","))
        assert hmac.compare_digest(v1, hmac.new(secret.encode(), f"{t}.".encode()
                                                + request.body, hashlib.sha256).hexdigest())
    body = json.loads(receiver.requests[1].body)
    assert (body["type"], body["data"]["job"]["error"]) == ("job.failed", "Out of memory.")
    assert body["data"]["job"]["url"] == f"https://spins.example.com/jobs/{job.pk}/"
    assert wait_for(lambda: Event.objects.filter(emailed_at__isnull=False).exists(),
                    timeout=30, what="the job email")
