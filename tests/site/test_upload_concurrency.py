"""A slow, heavy upload does not hold up anyone else: while one user's upload is being
checked, another user signs in and calls the API, on the real database (SQLite's one write
lock, or PostgreSQL) with real threads, each with its own connection."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.test import Client

from accounts.tokens import create_token
from products import validation
from products.models import Photo, Product
from tests.site.test_validation import jpeg, make_zip, uploads_dir

__all__ = ["uploads_dir"]
pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-shop-123"
DECODE_SECONDS = 0.4
PHOTOS = 10  # 4 s of checking, twice the busy timeout below


@pytest.fixture
def short_busy_timeout():
    """On SQLite, a writer waits this long for the lock before "database is locked"; 2 s
    instead of 20 keeps the test short. Connections opened from here on (each thread's)
    get it."""
    options = connections.settings["default"].setdefault("OPTIONS", {})
    before = options.get("timeout")
    if connection.vendor == "sqlite":
        options["timeout"] = 2
    yield
    if before is None:
        options.pop("timeout", None)
    else:
        options["timeout"] = before


def in_thread(target, results: list) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_slow_upload_does_not_lock_out_other_users(django_user_model, uploads_dir,
                                                     monkeypatch, short_busy_timeout,
                                                     settings):
    # A fast hasher: what is measured is waiting for the database, not PBKDF2 on a busy CI.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    shop = django_user_model.objects.create_user("shop", password=PASSWORD)
    other = django_user_model.objects.create_user("other", password=PASSWORD)
    product = Product.objects.create(owner=shop, name="Vase", sku="V-1")
    _, shop_token = create_token(shop, "uploads")
    _, other_token = create_token(other, "reads")
    archive = make_zip({f"IMG_{i:04d}.jpg": jpeg(i, 1600, 1200) for i in range(PHOTOS)})

    decoding = threading.Event()
    real_check = validation.check_image

    def slow_check(name, data):  # a big photo takes a while to decode
        decoding.set()
        time.sleep(DECODE_SECONDS)
        return real_check(name, data)

    monkeypatch.setattr(validation, "check_image", slow_check)

    def upload():
        return Client(HTTP_AUTHORIZATION=f"Bearer {shop_token}",
                      raise_request_exception=False).post(
            f"/api/products/{product.pk}/photos",
            {"files": [SimpleUploadedFile("shots.zip", archive)]})

    def probe():
        answers = []
        while uploading.is_alive():
            started = time.monotonic()
            client = Client(REMOTE_ADDR="198.51.100.4", raise_request_exception=False)
            signed_in = client.post("/accounts/login/", {"username": "other",
                                                         "password": PASSWORD})
            usage = Client(HTTP_AUTHORIZATION=f"Bearer {other_token}",
                           raise_request_exception=False).get("/api/usage")
            answers.append((signed_in.status_code, usage.status_code,
                            time.monotonic() - started,
                            signed_in.content[:200] + usage.content[:200]))
        return answers

    uploaded: list = []
    uploading = in_thread(upload, uploaded)
    assert decoding.wait(10), "the upload never started checking photos"
    probed: list = []
    in_thread(probe, probed).join(60)
    uploading.join(60)

    [response] = uploaded
    assert response.status_code == 200, response.content[:500]
    assert response.json()["accepted"] == PHOTOS
    assert Photo.objects.filter(product=product).count() == PHOTOS

    [answers] = probed
    assert len(answers) >= 2, "the other user's calls waited for the upload"
    for signed_in, usage, seconds, body in answers:
        assert (signed_in, usage) == (302, 200), body
        assert b"database is locked" not in body
        # Waiting for SQLite's lock would take the 2 s busy timeout, then fail.
        assert seconds < 3, f"a sign-in and an API call took {seconds:.1f} s"

