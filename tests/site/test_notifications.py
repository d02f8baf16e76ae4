"""Job notifications: the email, and webhooks POSTed to a real HTTP receiver on a local
port by the real delivery task, signed, retried after a 500 through the one-off schedule
the worker's scheduler would run; and refused for internal addresses."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from django.core import mail
from django.utils.module_loading import import_string
from django_q.models import Schedule

from notifications import services, webhooks
from notifications.models import Event, NotificationSettings, WebhookDelivery
from pipeline.jobs import transitions
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import drain_queue, finished_frames, storage
from tests.site.webhook_receiver import receiver

__all__ = ["storage", "receiver"]
pytestmark = pytest.mark.django_db

SITE = "https://spins.example.com"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # The receiver listens on 127.0.0.1; the SSRF tests turn this off again.
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("shop", email="shop@example.com",
                                                 password="pw-shop-123")


@pytest.fixture
def product(owner) -> Product:
    return Product.objects.create(owner=owner, name="Teapot", sku="TEA-1")


def running_job(product: Product) -> Job:
    return Job.objects.create(product=product, status=Job.Status.RUNNING, attempts=1,
                              stage=Job.Stage.FINALIZE)


def run_tasks(tasks: list[dict]) -> list:
    """Run queued django-q2 tasks here, as the worker would."""
    return [import_string(task["func"])(*task["args"]) for task in tasks]


def verify(secret: str, header: str, body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_a_finished_job_is_posted_signed_and_retried_after_a_500(
        product, storage, receiver, django_capture_on_commit_callbacks):
    endpoint, secret = services.webhook_endpoint_create(user=product.owner, url=receiver.url)
    receiver.statuses = [500, 200]
    job = running_job(product)
    finished_frames(job)
    drain_queue()  # a Redis broker keeps what earlier tests left queued; an ORM one does not
    with django_capture_on_commit_callbacks(execute=True):
        assert transitions.job_succeed(job_id=str(job.pk), attempt=1, message="Done.",
                                       actual_cost=Decimal("0.4210"))
    tasks = drain_queue()
    assert sorted(t["func"] for t in tasks) == ["notifications.tasks.deliver_webhook",
                                                "notifications.tasks.send_job_email"]
    run_tasks(tasks)

    # First attempt: the receiver answered 500, so a second one is scheduled.
    first = WebhookDelivery.objects.get(attempt=1)
    assert (first.outcome, first.status_code, first.error) == ("failed", 500,
                                                                "HTTP 500 Internal Server Error")
    assert first.duration_ms is not None and first.next_attempt_at is not None
    retry = Schedule.objects.get(func="notifications.tasks.deliver_webhook")
    assert retry.schedule_type == Schedule.ONCE and retry.next_run == first.next_attempt_at
    assert (first.next_attempt_at - first.created_at).total_seconds() == pytest.approx(60, abs=1)

    # What the worker's scheduler runs when the retry is due.
    import_string(retry.func)(*ast.literal_eval(retry.args))
    second = WebhookDelivery.objects.get(attempt=2)
    assert (second.outcome, second.status_code, second.next_attempt_at) == ("succeeded", 200,
                                                                            None)
    # Its own retry, scheduled before it was sent, is cancelled by the success.
    assert not Schedule.objects.filter(name__endswith="#3").exists()

    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert request.path == "/hooks/spins?shop=1"
        assert request.headers["Content-Type"] == "application/json"
        assert verify(secret, request.headers["Spin-Signature"], request.body)
        assert not verify(secret, request.headers["Spin-Signature"], request.body + b" ")
    assert receiver.requests[0].body == receiver.requests[1].body
    assert [r.headers["Spin-Delivery-Attempt"] for r in receiver.requests] == ["1", "2"]

    body = json.loads(receiver.requests[1].body)
    event = Event.objects.get()
    assert body["id"] == str(event.pk) == receiver.requests[1].headers["Spin-Event-Id"]
    assert body["type"] == "job.succeeded"
    data = body["data"]
    assert data["job"]["id"] == str(job.pk) and data["job"]["status"] == "succeeded"
    assert data["job"]["url"] == f"{SITE}/jobs/{job.pk}/"
    assert data["job"]["cost_usd"] == 0.421
    assert data["product"] == {"id": product.pk, "name": "Teapot", "sku": "TEA-1",
                               "url": f"{SITE}/products/{product.pk}/"}
    spin = data["spin"]
    assert spin["spin_json_url"] == f"{SITE}/jobs/{job.pk}/spin.json"
    assert spin["frame_count"] == 12 and spin["rows"] == 2
    assert spin["manifest_url"].startswith(f"{SITE}/frames/")
    assert spin["frame_zips"] and all(u.startswith(f"{SITE}/frames/") and u.endswith(".zip")
                                      for u in spin["frame_zips"])

    # And the owner's email, sent once even if its task were delivered twice.
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["shop@example.com"]
    assert mail.outbox[0].subject == "Your 360° spin of Teapot is ready"
    assert f"{SITE}/jobs/{job.pk}/spin.json" in mail.outbox[0].body
    assert not services.job_email_send(event_id=str(event.pk))
    assert len(mail.outbox) == 1


def test_a_failed_job_emails_the_reason_and_posts_job_failed(
        product, receiver, django_capture_on_commit_callbacks):
    services.webhook_endpoint_create(user=product.owner, url=receiver.url)
    job = running_job(product)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.job_fail(job_id=str(job.pk), attempt=1,
                             reason="Only 3 of 20 photos could be placed.")
    run_tasks(drain_queue())
    body = json.loads(receiver.requests[0].body)
    assert body["type"] == "job.failed"
    assert body["data"]["job"]["error"] == "Only 3 of 20 photos could be placed."
    assert body["data"]["spin"] is None
    assert mail.outbox[0].subject == "The 360° spin of Teapot failed"
    assert "Only 3 of 20 photos could be placed." in mail.outbox[0].body


def test_job_emails_follow_the_users_setting(product, django_capture_on_commit_callbacks):
    NotificationSettings.objects.create(user=product.owner, email_on_job_finished=False)
    job = running_job(product)
    with django_capture_on_commit_callbacks(execute=True):
        transitions.job_succeed(job_id=str(job.pk), attempt=1, message="Done.")
    assert drain_queue() == []  # no endpoints, no email
    assert Event.objects.get().type == "job.succeeded"
    assert mail.outbox == []


def test_a_stale_transition_announces_nothing(product, django_capture_on_commit_callbacks):
    job = running_job(product)
    with django_capture_on_commit_callbacks(execute=True):
        assert not transitions.job_succeed(job_id=str(job.pk), attempt=2, message="Done.")
    assert not Event.objects.exists()


def test_retries_stop_after_the_last_attempt(settings, product, receiver):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.statuses = [503]
    endpoint, _ = services.webhook_endpoint_create(user=product.owner, url=receiver.url)
    event = Event.objects.create(user=product.owner, type="job.failed", payload={"x": 1})
    first = services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                     attempt=1)
    assert first.next_attempt_at is not None
    last = services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                    attempt=2)
    assert (last.outcome, last.status_code, last.next_attempt_at) == ("failed", 503, None)
    assert list(Schedule.objects.filter(func="notifications.tasks.deliver_webhook")
                .values_list("args", flat=True)) == [f"('{event.pk}', {endpoint.pk}, 2)"]
    # A second delivery of the same task claims nothing and sends nothing.
    assert services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                    attempt=2) is None
    assert len(receiver.requests) == 2


def test_the_backoff_grows_fourfold(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60
    assert [services.retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [
        60, 240, 960, 3840, 15360]


# --- no internal addresses --------------------------------------------------------------
@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
                                     "fe80::1", "fd00::1", "::ffff:127.0.0.1", "224.0.0.1",
                                     # IPv6 forms that embed IPv4 or reach inside:
                                     # IPv4-compatible, NAT64 (well-known and local),
                                     # 6to4, IPv4-translated, site-local
                                     "::127.0.0.1", "::8.8.8.8", "64:ff9b::7f00:1",
                                     "64:ff9b::a00:1", "64:ff9b:1::808:808",
                                     "2002:7f00:1::1", "2002:a00:1::1",
                                     "::ffff:0:7f00:1", "::ffff:0:808:808", "fec0::1"])
def test_internal_addresses_are_internal(address):
    assert webhooks.is_internal(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1",
                                     "64:ff9b::5db8:d822"])  # NAT64 of 93.184.216.34
def test_public_addresses_are_not(address):
    assert not webhooks.is_internal(address)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://localhost/hook",
                                 "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]/hook", "http://10.0.0.5/hook",
                                 "ftp://example.com/hook", "http://user:pw@example.com/",
                                 "http://example.com:99999/",
                                 "http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/",
                                 "http://[2002:7f00:1::1]/", "http://[::ffff:0:7f00:1]/",
                                 "http://[fec0::1]/", "http://1.1.1.1/a b",
                                 f"http://{'é' * 70}.com/", "http://exaßmple..com/"])
def test_internal_or_odd_urls_are_refused_when_saved(settings, owner, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(services.NotificationError):
        services.webhook_endpoint_create(user=owner, url=url)


def test_delivery_checks_the_address_again_and_sends_nothing_inside(settings, owner,
                                                                    receiver):
    # Saved while allowed (or a name that resolved to a public address then): the check
    # at delivery time is the one that counts.
    endpoint, _ = services.webhook_endpoint_create(user=owner, url=receiver.url)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    event = services.webhook_test_send(endpoint=endpoint)
    delivery = services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                        attempt=1)
    assert delivery.outcome == "failed" and delivery.status_code is None
    assert "127.0.0.1, an internal address" in delivery.error
    assert receiver.requests == []


@pytest.mark.parametrize("host", ["[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]",
                                  "[::ffff:0:7f00:1]", "[fec0::1]"])
def test_delivery_refuses_ipv6_forms_of_internal_addresses(settings, owner, host):
    # An endpoint saved before the rule knew these forms is refused when sending.
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    endpoint, _ = services.webhook_endpoint_create(user=owner, url=f"http://{host}/hook")
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    event = services.webhook_test_send(endpoint=endpoint)
    delivery = services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                        attempt=1)
    assert delivery.outcome == "failed" and delivery.status_code is None
    assert "an internal address" in delivery.error


def test_redirects_are_not_followed(owner, receiver):
    receiver.statuses = [302]
    receiver.redirect_to = "http://169.254.169.254/latest/meta-data/"
    endpoint, _ = services.webhook_endpoint_create(user=owner, url=receiver.url)
    event = services.webhook_test_send(endpoint=endpoint)
    delivery = services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                        attempt=1)
    assert (delivery.outcome, delivery.status_code) == ("failed", 302)
    assert "redirects are not followed" in delivery.error
    assert len(receiver.requests) == 1
    assert delivery.next_attempt_at is None  # a test event is tried once


def test_an_unreachable_endpoint_is_a_failed_attempt(owner):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint, _ = services.webhook_endpoint_create(user=owner, url=f"http://127.0.0.1:{port}/")
    event = Event.objects.create(user=owner, type="job.failed", payload={})
    delivery = services.webhook_deliver(event_id=str(event.pk), endpoint_id=endpoint.pk,
                                        attempt=1)
    assert delivery.outcome == "failed" and delivery.status_code is None
    assert "ConnectionRefusedError" in delivery.error
    assert delivery.next_attempt_at is not None


# --- one user's webhooks do not hold up everyone -------------------------------------
def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout(settings, owner):
    """The socket timeout bounds each read; a drip of bytes used to hold the shared worker
    for as long as the receiver liked."""
    import socket
    import threading
    import time

    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):  # a header byte every 0.2 s, for ever
                try:
                    conn.sendall(b"X")
                except OSError:
                    return

    threading.Thread(target=drip, daemon=True).start()
    try:
        started = time.monotonic()
        result = webhooks.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {})
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    assert took < 2.5, f"the delivery took {took:.1f} s"
    assert not result.ok and "no complete answer within 1 s" in result.error


def test_endpoints_per_user_are_limited(settings, owner, django_user_model):
    settings.WEBHOOK_ENDPOINTS_PER_USER = 2
    for n in range(2):
        services.webhook_endpoint_create(user=owner, url=f"http://127.0.0.1:9/{n}")
    with pytest.raises(services.NotificationLimit, match="delete one before adding"):
        services.webhook_endpoint_create(user=owner, url="http://127.0.0.1:9/3")
    other = django_user_model.objects.create_user("other")
    services.webhook_endpoint_create(user=other, url="http://127.0.0.1:9/other")


def test_test_events_on_their_way_are_limited_per_user(settings, owner, receiver):
    settings.WEBHOOK_TESTS_IN_FLIGHT_PER_USER = 2
    endpoint, _ = services.webhook_endpoint_create(user=owner, url=receiver.url)
    events = [services.webhook_test_send(endpoint=endpoint) for _ in range(2)]
    with pytest.raises(services.NotificationLimit, match="2 test events are still on their way"):
        services.webhook_test_send(endpoint=endpoint)
    # Once one has been delivered (or failed), another may go.
    services.webhook_deliver(event_id=str(events[0].pk), endpoint_id=endpoint.pk, attempt=1)
    services.webhook_test_send(endpoint=endpoint)
    with pytest.raises(services.NotificationLimit):
        services.webhook_test_send(endpoint=endpoint)


def test_one_users_endpoints_get_a_job_event_one_at_a_time_behind_others_work(
        product, storage, receiver, django_capture_on_commit_callbacks):
    """Ten slow endpoints used to be ten tasks at once, holding every worker; now one
    delivery at a time, and the rest queue behind what others queued meanwhile."""
    endpoints = [services.webhook_endpoint_create(user=product.owner,
                                                  url=f"{receiver.url}&n={n}")[0]
                 for n in range(3)]
    job = running_job(product)
    finished_frames(job)
    drain_queue()
    with django_capture_on_commit_callbacks(execute=True):
        transitions.job_succeed(job_id=str(job.pk), attempt=1, message="Done.",
                                actual_cost=Decimal("0.1"))
    tasks = [t for t in drain_queue() if t["func"] != "notifications.tasks.send_job_email"]
    assert [t["func"] for t in tasks] == ["notifications.tasks.deliver_first_attempts"]
    ids = list(tasks[0]["args"])[1]
    assert sorted(ids) == sorted(e.pk for e in endpoints)

    # Someone else's work is queued meanwhile (here: a stand-in task).
    from django_q.tasks import async_task
    async_task("math.floor", 1.5)
    run_tasks(tasks)  # the first endpoint's delivery
    assert len(receiver.requests) == 1
    assert not Schedule.objects.filter(name__startswith="webhooks ").exists()  # fallback gone
    order = drain_queue()
    assert [t["func"] for t in order] == ["math.floor",
                                          "notifications.tasks.deliver_first_attempts"]
    assert list(order[1]["args"])[1] == ids[1:]
    run_tasks(order[1:])
    [last] = drain_queue()
    assert (last["func"], list(last["args"])) == ("notifications.tasks.deliver_webhook",
                                                  [str(Event.objects.get().pk), ids[2], 1])
    run_tasks([last])
    assert len(receiver.requests) == 3
    assert set(WebhookDelivery.objects.values_list("outcome", flat=True)) == {"succeeded"}


def test_a_worker_lost_mid_send_leaves_a_schedule_for_the_other_endpoints(owner,
                                                                          monkeypatch):
    event = Event.objects.create(user=owner, type="job.failed", payload={})
    ids = [services.webhook_endpoint_create(user=owner, url=f"http://127.0.0.1:9/{n}")[0].pk
           for n in range(3)]

    def dies(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(services, "webhook_deliver", dies)
    with pytest.raises(SystemExit):
        services.webhook_first_attempts(event_id=str(event.pk), endpoint_ids=ids)
    fallback = Schedule.objects.get(name=f"webhooks {event.pk} after {ids[0]}")
    assert fallback.func == "notifications.tasks.deliver_first_attempts"
    assert ast.literal_eval(fallback.args) == (str(event.pk), ids[1:])
