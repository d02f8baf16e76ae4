"""Webhook endpoints through the API (same auth and error schema as the rest) and the
user's notifications page: the secret shown once, the test event, the delivery log."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.utils.module_loading import import_string

from accounts.tokens import create_token
from notifications.models import NotificationSettings, WebhookEndpoint
from tests.site.jobs_fixtures import drain_queue
from tests.site.webhook_receiver import receiver

__all__ = ["receiver"]
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_receivers(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("shop", email="shop@example.com")


@pytest.fixture
def api(owner) -> Client:
    _, token = create_token(owner, "shop backend")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def run_queued() -> None:
    for task in drain_queue():
        import_string(task["func"])(*task["args"])


def test_endpoints_through_the_api(api, owner, receiver, django_user_model,
                                   django_capture_on_commit_callbacks):
    created = api.post("/api/webhooks/endpoints", {"url": receiver.url, "description": "shop"},
                       content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["url"] == receiver.url
    endpoint_id = body["id"]

    listed = api.get("/api/webhooks/endpoints").json()
    assert [e["id"] for e in listed] == [endpoint_id]
    assert "secret" not in listed[0]  # shown once
    assert "secret" not in api.get(f"/api/webhooks/endpoints/{endpoint_id}").json()

    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(f"/api/webhooks/endpoints/{endpoint_id}/test")
    assert sent.status_code == 202
    run_queued()
    assert json.loads(receiver.requests[0].body)["type"] == "webhook.test"
    deliveries = api.get(f"/api/webhooks/endpoints/{endpoint_id}/deliveries").json()
    assert deliveries["count"] == 1
    item = deliveries["items"][0]
    assert (item["event_id"], item["event_type"], item["attempt"], item["outcome"],
            item["status_code"]) == (sent.json()["event_id"], "webhook.test", 1, "succeeded",
                                     200)

    # Someone else's endpoint does not exist for you.
    rival = django_user_model.objects.create_user("rival")
    _, rival_token = create_token(rival, "rival")
    other = Client(HTTP_AUTHORIZATION=f"Bearer {rival_token}")
    for call in (other.get, other.delete):
        response = call(f"/api/webhooks/endpoints/{endpoint_id}")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert other.post(f"/api/webhooks/endpoints/{endpoint_id}/test").status_code == 404
    assert other.get("/api/webhooks/endpoints").json() == []

    assert api.delete(f"/api/webhooks/endpoints/{endpoint_id}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("payload", [
    {"url": "http://169.254.169.254/latest/meta-data/"}, {"url": "file:///etc/passwd"},
    {"url": ""}, {"url": "http://x.example/" + "a" * 600}, {}, {"url": 7},
    # once 500s: a space in the path, a 70-letter IDN label, an empty label
    {"url": "http://1.1.1.1/a b"}, {"url": f"http://{'ü' * 70}.example/"},
    {"url": "http://exaßmple..com/"}])
def test_bad_endpoints_are_422_in_the_error_schema(settings, api, payload):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    response = api.post("/api/webhooks/endpoints", payload, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid_request"
    assert response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


def test_limits_per_user_are_409_in_the_error_schema(settings, api, receiver):
    settings.WEBHOOK_ENDPOINTS_PER_USER = 1
    settings.WEBHOOK_TESTS_IN_FLIGHT_PER_USER = 1
    first = api.post("/api/webhooks/endpoints", {"url": receiver.url},
                     content_type="application/json")
    assert first.status_code == 201
    second = api.post("/api/webhooks/endpoints", {"url": receiver.url + "&2"},
                      content_type="application/json")
    assert second.status_code == 409 and second.json()["code"] == "conflict"
    assert "delete one before adding another" in second.json()["detail"]
    test_url = f"/api/webhooks/endpoints/{first.json()['id']}/test"
    assert api.post(test_url).status_code == 202
    again = api.post(test_url)
    assert again.status_code == 409 and "A test event is still on its way" in again.json()["detail"]


def test_the_api_needs_credentials():
    response = Client().get("/api/webhooks/endpoints")
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


def test_the_notifications_page(client, owner, receiver, django_capture_on_commit_callbacks):
    client.force_login(owner)
    page = client.get("/notifications/").content.decode()
    assert "No endpoints yet." in page
    assert re.search(r'<input[^>]*name="email_on_job_finished"[^>]*checked', page)  # default on

    created = client.post("/notifications/endpoints/", {"url": receiver.url,
                                                         "description": "storefront"})
    assert created.status_code == 200
    secret = re.search(r'value="(whsec_[^"]+)"', created.content.decode()).group(1)
    endpoint = WebhookEndpoint.objects.get(user=owner)
    assert endpoint.secret == secret
    assert secret not in client.get("/notifications/").content.decode()  # shown once

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/notifications/endpoints/{endpoint.pk}/test/")
    assert response.status_code == 302
    run_queued()
    log = client.get("/notifications/").content.decode()
    assert "webhook.test" in log and "HTTP 200" in log

    client.post("/notifications/email/", {})  # the checkbox left empty: off
    assert not NotificationSettings.objects.get(user=owner).email_on_job_finished

    refused = client.post("/notifications/endpoints/", {"url": "ftp://example.com/"})
    assert refused.status_code == 400 and 'role="alert"' in refused.content.decode()

    assert client.post(f"/notifications/endpoints/{endpoint.pk}/delete/").status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_shows_events_and_deliveries_but_never_the_secret(client, owner, receiver,
                                                                     django_user_model):
    from notifications import services

    endpoint, secret = services.webhook_endpoint_create(user=owner, url=receiver.url)
    event = services.webhook_test_send(endpoint=endpoint)
    services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk, attempt=1)
    client.force_login(django_user_model.objects.create_superuser("admin"))
    for url in ("/admin/notifications/event/", f"/admin/notifications/event/{event.pk}/change/",
                "/admin/notifications/webhookdelivery/", "/admin/notifications/webhookendpoint/",
                f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/",
                "/admin/notifications/notificationsettings/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert secret not in response.content.decode()
