"""Abuse is held off, on the real database and cache: failed sign-ins lock the account or
the address out (django-axes, the login page and the admin's), API calls are limited per
token, per address and, once refused as unauthenticated, per address again (429 with
Retry-After in the error schema), and uploads are limited per user per hour."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.tokens import create_token
from products.models import Photo, Product
from tests.site.test_validation import jpeg, uploads_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

PASSWORD = "pw-shop-123"


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("shop", password=PASSWORD)


def sign_in(username: str, password: str, *, address: str = "203.0.113.7",
            url: str = "/accounts/login/"):
    return Client(REMOTE_ADDR=address).post(url, {"username": username,
                                                  "password": password})


def assert_locked(response) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in locked" in page and "Too many failed sign-ins" in page
    assert int(response["Retry-After"]) == 30 * 60


# --- sign-in pages (django-axes) --------------------------------------------------------
def test_twenty_failed_sign_ins_lock_the_account_even_for_the_right_password(owner,
                                                                            settings):
    answers = [sign_in("shop", f"wrong-{i}", address=f"203.0.113.{i}").status_code
               for i in range(20)]
    # Each attempt from another address: the account itself is what gets locked.
    limit = settings.AXES_FAILURE_LIMIT
    assert answers[:limit - 1] == [200] * (limit - 1)  # the form again, with its error
    assert set(answers[limit - 1:]) == {429}
    assert_locked(sign_in("shop", PASSWORD, address="198.51.100.1"))


def test_failed_sign_ins_from_one_address_lock_that_address(owner, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(f"guess-{i}", "wrong")
    assert_locked(sign_in("shop", PASSWORD))  # the right password, from that address
    elsewhere = sign_in("shop", PASSWORD, address="198.51.100.1")
    assert elsewhere.status_code == 302  # signed in from another address


def test_the_admin_login_is_locked_out_too(django_user_model, settings):
    django_user_model.objects.create_superuser("boss", password=PASSWORD)
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        sign_in("boss", "wrong", url="/admin/login/")
    assert_locked(sign_in("boss", PASSWORD, url="/admin/login/"))


def test_a_successful_sign_in_resets_the_count(owner, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert sign_in("shop", "wrong").status_code == 200
    assert sign_in("shop", PASSWORD).status_code == 302
    for _ in range(2):
        assert sign_in("shop", "wrong").status_code == 200


# --- API calls -------------------------------------------------------------------------
def error_body(response) -> dict:
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    return body


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert error_body(response)["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1
    assert f"try again in {response['Retry-After']} seconds" in response.json()["detail"]


def test_a_hundred_calls_with_bad_tokens_get_429s(owner, settings):
    client = Client(REMOTE_ADDR="203.0.113.9")
    answers = [client.get("/api/products", HTTP_AUTHORIZATION=f"Bearer nrf_guess{i:04d}")
               for i in range(100)]
    allowed = int(settings.API_AUTH_FAILURES_PER_ADDRESS.split("/")[0])
    assert [r.status_code for r in answers[:allowed]] == [401] * allowed
    for response in answers[allowed:]:
        assert_throttled(response)
    # Calls without any credential count as failures too.
    assert_throttled(client.get("/api/products"))
    # A valid token still works from that address; another address is not affected.
    _, token = create_token(owner, "real")
    assert client.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    other = Client(REMOTE_ADDR="198.51.100.2", HTTP_AUTHORIZATION="Bearer nrf_guess9999")
    assert other.get("/api/products").status_code == 401


def test_calls_are_limited_per_token(owner, settings):
    settings.API_RATE_PER_TOKEN = "5/min"
    _, first = create_token(owner, "first")
    _, second = create_token(owner, "second")
    client = Client(REMOTE_ADDR="203.0.113.10")
    for _ in range(5):
        assert client.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {first}"
                          ).status_code == 200
    assert_throttled(client.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {first}"))
    assert client.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {second}"
                      ).status_code == 200


def test_the_per_token_limit_counts_the_token_however_the_header_is_written(owner,
                                                                          settings):
    # The scheme is case-insensitive and whitespace is free: each spelling authenticates,
    # so each must count against the same token, not get a fresh quota.
    settings.API_RATE_PER_TOKEN = "3/min"
    _, token = create_token(owner, "one")
    client = Client(REMOTE_ADDR="203.0.113.12")
    spellings = [f"Bearer {token}", f"bEarer  {token}", f"BEARER {token} ", f"bearer\t{token}"]
    answers = [client.get("/api/products", HTTP_AUTHORIZATION=header)
               for header in spellings]
    assert [r.status_code for r in answers[:3]] == [200] * 3
    assert_throttled(answers[3])


def test_the_sites_own_session_is_limited_per_user(owner, settings):
    settings.API_RATE_PER_TOKEN = "3/min"
    client = Client()
    client.force_login(owner)
    assert [client.get("/api/products").status_code for _ in range(3)] == [200] * 3
    assert_throttled(client.get("/api/products"))


def test_calls_are_limited_per_address_whatever_the_token(owner, settings):
    settings.API_RATE_PER_ADDRESS = "4/min"
    tokens = [create_token(owner, f"t{i}")[1] for i in range(5)]
    here = Client(REMOTE_ADDR="203.0.113.11")
    for token in tokens[:4]:
        assert here.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {token}"
                        ).status_code == 200
    # A forged X-Forwarded-For does not make it another caller (NUM_PROXIES is 0).
    assert_throttled(here.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {tokens[4]}",
                              HTTP_X_FORWARDED_FOR="192.0.2.99"))
    there = Client(REMOTE_ADDR="198.51.100.3")
    assert there.get("/api/products", HTTP_AUTHORIZATION=f"Bearer {tokens[4]}"
                     ).status_code == 200


# --- uploads per user per hour ---------------------------------------------------------
@pytest.fixture
def product(owner, uploads_dir) -> Product:  # noqa: F811
    return Product.objects.create(owner=owner, name="Vase", sku="V-1")


def files(*seeds: int) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"p{seed}.jpg", jpeg(seed)) for seed in seeds]


def test_uploads_are_limited_per_user_per_hour_across_api_and_page(owner, product,
                                                                     settings):
    settings.UPLOADS_PER_HOUR = 3
    _, token = create_token(owner, "uploads")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"/api/products/{product.pk}/photos"
    assert api.post(url, {"files": files(1, 2)}).json()["accepted"] == 2
    # Two more do not fit in what is left of the hour: refused whole, nothing stored.
    refused = api.post(url, {"files": files(3, 4)})
    assert_throttled(refused)
    assert Photo.objects.filter(product=product).count() == 2

    page = Client()
    page.force_login(owner)
    page_url = f"/products/{product.pk}/photos/"
    assert page.post(page_url, {"files": files(5)}, HTTP_ACCEPT="application/json"
                     ).status_code == 200  # the third file of the hour
    assert_throttled(page.post(page_url, {"files": files(6)},
                               HTTP_ACCEPT="application/json"))
    form = page.post(page_url, {"files": files(7)}, follow=True)
    assert "You have uploaded 3 files in the last hour" in form.content.decode()
    assert Photo.objects.filter(product=product).count() == 3


def test_one_users_uploads_do_not_count_against_another(owner, product, settings,
                                                        django_user_model):
    settings.UPLOADS_PER_HOUR = 1
    rival = django_user_model.objects.create_user("rival")
    theirs = Product.objects.create(owner=rival, name="Cup", sku="C-1")
    for user, item in ((owner, product), (rival, theirs)):
        _, token = create_token(user, "uploads")
        response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
            f"/api/products/{item.pk}/photos", {"files": files(item.pk)})
        assert response.json()["accepted"] == 1


def test_photo_files_count_wrong_tokens_against_the_address(owner, product, settings):
    # /products/photos/<id>/ takes API tokens too: guessing them there is as slow as on
    # the API, and shares its count.
    settings.API_AUTH_FAILURES_PER_ADDRESS = "5/10min"
    _, token = create_token(owner, "photos")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    photo_id = api.post(f"/api/products/{product.pk}/photos",
                        {"files": files(1)}).json()["results"][0]["photo"]["id"]
    guesser = Client(REMOTE_ADDR="203.0.113.20")
    answers = [guesser.get(f"/products/photos/{photo_id}/",
                           HTTP_AUTHORIZATION=f"Bearer nrf_guess{i:04d}") for i in range(8)]
    assert [r.status_code for r in answers[:5]] == [404] * 5
    for response in answers[5:]:
        assert_throttled(response)
    assert_throttled(guesser.get("/api/products", HTTP_AUTHORIZATION="Bearer nrf_guess"))
    # The owner's token still gets the photo, from that address too.
    mine = guesser.get(f"/products/photos/{photo_id}/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert mine.status_code == 200
