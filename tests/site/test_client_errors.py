"""Requests Django refuses to read answer 4xx that say why, never 500 with a traceback:
in the API's error schema (413 for bodies over DATA_UPLOAD_MAX_MEMORY_SIZE and for too
many files), and as a page for people."""

from __future__ import annotations

import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.tokens import create_token
from products.models import Photo, Product
from tests.site.test_validation import jpeg, uploads_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(owner, uploads_dir) -> Product:  # noqa: F811
    return Product.objects.create(owner=owner, name="Vase", sku="V-1")


@pytest.fixture
def api(owner) -> Client:
    _, token = create_token(owner, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def no_errors_logged(caplog):
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"code", "detail", "errors"} and body["code"] == code
    return body["detail"]


def test_a_file_name_of_1000_characters_is_400_and_says_so(api, product, no_errors_logged):
    """Sent whole, as a browser or curl sends it (the test client's uploaded files cut
    names to 255 characters on their own)."""
    name, boundary = "a" * 996 + ".jpg", "name-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n').encode() + jpeg(1) + (
        f"\r\n--{boundary}--\r\n").encode()
    detail = error(api.post(f"/api/products/{product.pk}/photos", body,
                            content_type=f"multipart/form-data; boundary={boundary}"),
                   400, "bad_request")
    assert "file name in the upload is too long" in detail
    assert not Photo.objects.exists()


def test_a_long_name_that_can_be_read_is_cut_and_judged_like_any_other(api, product,
                                                                        no_errors_logged):
    response = api.post(f"/api/products/{product.pk}/photos",
                        {"files": [SimpleUploadedFile("b" * 300 + ".jpg", jpeg(1))]})
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["accepted"] and len(result["name"]) <= 255
    assert Photo.objects.get(product=product).original_name == result["name"]


def test_301_files_in_one_request_is_413(api, product, settings, no_errors_logged):
    files = [SimpleUploadedFile(f"{i}.jpg", b"x") for i in range(301)]
    detail = error(api.post(f"/api/products/{product.pk}/photos", {"files": files}),
                   413, "too_large")
    assert f"at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}" in detail
    assert not Photo.objects.exists()


def test_an_11_mb_json_body_is_413(api, no_errors_logged):
    body = b'{"name": "' + b"x" * (11 * 1024 * 1024) + b'", "sku": "S-1"}'
    detail = error(api.post("/api/products", body, content_type="application/json"),
                   413, "too_large")
    assert "larger than 10 MB" in detail
    assert not Product.objects.exists()


def test_too_many_fields_and_broken_multipart_are_4xx(api, product, settings,
                                                      no_errors_logged):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = {f"f{i}": "v" for i in range(11)}
    error(api.post(f"/api/products/{product.pk}/photos", fields), 413, "too_large")
    no_boundary = api.post(f"/api/products/{product.pk}/photos", b"abc",
                           content_type="multipart/form-data")
    assert "well-formed multipart" in error(no_boundary, 400, "bad_request")


def test_the_page_says_why_in_html_and_in_json(owner, product):
    page = Client()
    page.force_login(owner)
    files = [SimpleUploadedFile(f"{i}.jpg", b"x") for i in range(301)]
    url = f"/products/{product.pk}/photos/"
    html = page.post(url, {"files": files})
    assert html.status_code == 413
    assert "Too many files in one request: at most 300" in html.content.decode()
    as_json = page.post(url, {"files": files}, HTTP_ACCEPT="application/json")
    error(as_json, 413, "too_large")


def test_a_host_the_site_does_not_serve_is_400_with_the_reason():
    client = Client()
    page = client.get("/products/", HTTP_HOST="shop.example")
    assert page.status_code == 400
    assert "does not serve the site the Host header names" in page.content.decode()
    assert "Host header" in error(client.get("/api/products", HTTP_HOST="shop.example"),
                                  400, "bad_request")
