"""Per-user API tokens: made and revoked on a page, stored only as a hash; the API takes a
valid token, refuses a revoked, wrong or missing one, and takes the session with CSRF."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client

from accounts.models import ApiToken
from accounts.tokens import create_token

pytestmark = pytest.mark.django_db


def test_token_page_creates_a_token_shown_once_and_stores_only_its_hash(client, owner):
    client.force_login(owner)
    response = client.post("/accounts/tokens/", {"name": "shop backend"})
    assert response.status_code == 200
    token = re.search(r'value="(nrf_[^"]+)"', response.content.decode()).group(1)
    row = ApiToken.objects.get(user=owner)
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.name, row.prefix, row.digest}
    assert token.startswith(row.prefix)
    assert token not in client.get("/accounts/tokens/").content.decode()  # shown once

    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/products").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None

    revoked = client.post(f"/accounts/tokens/{row.pk}/revoke/")
    assert revoked.status_code == 302
    response = api.get("/api/products")
    assert response.status_code == 401
    assert response.json()["detail"] == "The API token is invalid or has been revoked."


def test_wrong_and_missing_tokens_are_401(owner):
    create_token(owner, "real")
    for headers in ({"HTTP_AUTHORIZATION": "Bearer nrf_not-a-real-token"},
                    {"HTTP_AUTHORIZATION": "Bearer "}, {}):
        response = Client(**headers).get("/api/products")
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthorized"


def test_someone_elses_token_cannot_be_revoked(client, owner, django_user_model):
    row, _ = create_token(owner, "mine")
    client.force_login(django_user_model.objects.create_user("rival"))
    assert client.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 404
    row.refresh_from_db()
    assert row.is_active


def test_a_token_of_a_deactivated_user_is_refused(owner):
    _, token = create_token(owner, "x")
    owner.is_active = False
    owner.save()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/products").status_code == 401


def test_session_auth_needs_csrf_for_writes(owner):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.get("/api/products").status_code == 200
    response = browser.post("/api/products", {"name": "Vase", "sku": "V"},
                            content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    browser.get("/accounts/tokens/")  # sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    response = browser.post("/api/products", {"name": "Vase", "sku": "V"},
                            content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201, response.content
