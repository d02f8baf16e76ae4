"""Sign-up with email verification, ALLOW_SIGNUP, password change and reset by email,
through the real pages and Django's locmem outbox."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import clear_url_caches

# Transactional: the emails go out on commit, as they do on the site.
pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()
PASSWORD = "tall-Teapot-2026"


@pytest.fixture(autouse=True)
def outbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def link_in(message, path: str) -> str:
    return re.search(rf"https?://[^/\s]+({re.escape(path)}[^\s]+)", message.body).group(1)


def signs_in(username: str, password: str) -> bool:
    """Through the sign-in page (django-axes needs the request Client.login lacks)."""
    return Client().post("/accounts/login/", {"username": username,
                                              "password": password}).status_code == 302


def sign_up(client: Client, username: str = "newshop", email: str = "new@example.com",
            password: str = PASSWORD):
    return client.post("/accounts/signup/", {"username": username, "email": email,
                                             "password1": password, "password2": password})


def confirm(client: Client, link: str, password: str = PASSWORD):
    """The link's page asks for the password chosen at sign-up."""
    return client.post(link, {"password": password})


def test_sign_up_needs_the_emailed_link_before_signing_in(client):
    response = sign_up(client)
    assert response.status_code == 302 and response.url == "/accounts/signup/done/"
    assert "new@example.com" in client.get(response.url).content.decode()
    user = User.objects.get(username="newshop")
    assert not user.is_active and user.email == "new@example.com"
    assert not signs_in("newshop", PASSWORD)

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    assert mail.outbox[0].subject == "Confirm your email for 360° spins"
    link = link_in(mail.outbox[0], "/accounts/verify/")
    page = client.get(link)  # opening it changes nothing: it asks for the password
    assert page.status_code == 200 and "newshop" in page.content.decode()
    user.refresh_from_db()
    assert not user.is_active
    verified = confirm(client, link)
    assert verified.status_code == 302 and verified.url == "/products/"
    user.refresh_from_db()
    assert user.is_active
    assert client.session["_auth_user_id"] == str(user.pk)  # signed in by the link

    # The link works once.
    client.logout()
    assert client.get(link).status_code == 400
    assert confirm(client, link).status_code == 400
    assert signs_in("newshop", PASSWORD)


def test_sign_up_answers_the_same_whatever_is_taken_and_tells_the_mailbox(
        client, django_user_model):
    django_user_model.objects.create_user("old", email="Shop@Example.com")
    fresh = sign_up(client, username="fresh", email="fresh@example.com")
    taken_address = sign_up(client, username="another", email="shop@example.com")
    taken_name = sign_up(client, username="OLD", email="third@example.com")
    for response in (fresh, taken_address, taken_name):
        assert response.status_code == 302 and response.url == "/accounts/signup/done/"
    assert set(User.objects.values_list("username", flat=True)) == {"old", "fresh"}
    by_address = {m.to[0]: m for m in mail.outbox}
    assert set(by_address) == {"fresh@example.com", "Shop@example.com", "third@example.com"}
    assert by_address["Shop@example.com"].subject == "You already have a 360° spins account"
    assert '"old"' in by_address["Shop@example.com"].body
    assert by_address["third@example.com"].subject == "Choose another username for 360° spins"

    weak = client.post("/accounts/signup/", {"username": "x", "email": "x@example.com",
                                             "password1": "123", "password2": "123"})
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    assert len(mail.outbox) == 3


def test_a_taken_address_or_username_costs_the_same_password_hashing(client, monkeypatch,
                                                                     django_user_model):
    """The hasher is most of a sign-up's time: skipping it when nothing is made would
    tell a taken address by how fast the answer comes."""
    from accounts import services

    django_user_model.objects.create_user("old", email="old@example.com")
    hashed = []
    real = services.make_password
    monkeypatch.setattr(services, "make_password", lambda p: hashed.append(p) or real(p))
    sign_up(client, username="x1", email="old@example.com")
    sign_up(client, username="OLD", email="y@example.com")
    sign_up(client, username="fresh", email="z@example.com")
    assert hashed == [PASSWORD] * 3


def test_someone_signing_up_with_my_address_cannot_take_it(client, django_user_model):
    """A squatter signs up with the owner's address and a password of their own: the
    owner can still sign up, their confirmation takes the address, and clicking the
    squatter's link with their own password switches nothing on."""
    sign_up(Client(), username="squatter", email="owner@example.com", password="Squat-Pw-99")
    squatter_link = link_in(mail.outbox[0], "/accounts/verify/")

    response = sign_up(client, username="owner", email="owner@example.com")
    assert response.status_code == 302 and response.url == "/accounts/signup/done/"
    assert len(mail.outbox) == 2 and mail.outbox[1].to == ["owner@example.com"]
    owner_link = link_in(mail.outbox[1], "/accounts/verify/")

    wrong = confirm(client, squatter_link)  # the owner's password on the squatter's link
    assert wrong.status_code == 400 and "not the password" in wrong.content.decode()
    assert not User.objects.get(username="squatter").is_active

    assert confirm(client, owner_link).status_code == 302
    assert User.objects.get(username="owner").is_active
    assert not User.objects.filter(username="squatter").exists()  # the address is taken
    assert client.get(squatter_link).status_code == 400
    assert not signs_in("squatter", "Squat-Pw-99")
    assert signs_in("owner", PASSWORD)


def test_resending_the_link_does_not_switch_on_the_squatters_password(client):
    sign_up(Client(), username="squatter", email="owner@example.com", password="Squat-Pw-99")
    client.post("/accounts/signup/resend/", {"email": "owner@example.com"})
    assert len(mail.outbox) == 2
    link = link_in(mail.outbox[1], "/accounts/verify/")
    assert client.get(link).status_code == 200  # a page asking for the password
    assert confirm(client, link).status_code == 400  # the owner does not know it
    assert not User.objects.get(username="squatter").is_active
    assert not signs_in("squatter", "Squat-Pw-99")


def test_a_password_reset_reaches_an_unconfirmed_account_and_confirms_it(client):
    sign_up(Client(), username="squatter", email="owner@example.com", password="Squat-Pw-99")
    response = client.post("/accounts/password_reset/", {"email": "owner@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 2 and mail.outbox[1].to == ["owner@example.com"]
    link = link_in(mail.outbox[1], "/accounts/reset/")
    form = client.get(link, follow=True)
    done = client.post(form.redirect_chain[-1][0], {"new_password1": PASSWORD,
                                                    "new_password2": PASSWORD})
    assert done.status_code == 302 and done.url == "/accounts/reset/done/"
    user = User.objects.get(username="squatter")
    assert user.is_active and not hasattr(user, "pending_signup")
    assert signs_in("squatter", PASSWORD)  # the mailbox's password, not the squatter's
    assert not signs_in("squatter", "Squat-Pw-99")


def test_a_password_reset_or_change_revokes_the_api_tokens(client, django_user_model):
    from accounts.tokens import create_token

    user = django_user_model.objects.create_user("shop", email="shop@example.com",
                                                 password="old-Password-1")
    _, token = create_token(user, "backend")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/products").status_code == 200
    client.post("/accounts/password_reset/", {"email": "shop@example.com"})
    form = client.get(link_in(mail.outbox[0], "/accounts/reset/"), follow=True)
    client.post(form.redirect_chain[-1][0], {"new_password1": PASSWORD,
                                             "new_password2": PASSWORD})
    assert api.get("/api/products").status_code == 401

    _, token = create_token(user, "backend 2")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    user.refresh_from_db()
    client.force_login(user)
    changed = client.post("/accounts/password_change/", {
        "old_password": PASSWORD, "new_password1": "new-Password-2",
        "new_password2": "new-Password-2"})
    assert changed.status_code == 302 and changed.url == "/accounts/password_change/done/"
    assert api.get("/api/products").status_code == 401
    done = client.get(changed.url).content.decode()
    assert "Your API token was revoked with the old password" in done


@pytest.mark.parametrize("url,field", [("/accounts/signup/", None),
                                       ("/accounts/password_reset/", "email"),
                                       ("/accounts/signup/resend/", "email")])
def test_account_emails_are_limited_per_recipient_and_per_address(settings, url, field):
    settings.ACCOUNT_EMAILS_PER_RECIPIENT = "2/h"
    settings.ACCOUNT_EMAILS_PER_ADDRESS = "3/h"

    def post(email: str, address: str, n: int):
        data = ({"username": f"u{n}", "email": email, "password1": PASSWORD,
                 "password2": PASSWORD} if field is None else {field: email})
        return Client(REMOTE_ADDR=address).post(url, data)

    # One inbox, from many addresses: the third is refused.
    answers = [post("victim@example.com", f"203.0.113.{n}", n) for n in range(3)]
    assert [r.status_code for r in answers] == [302, 302, 429]
    assert int(answers[2]["Retry-After"]) > 0
    assert "Too many requests" in answers[2].content.decode()
    # Many inboxes, from one address: the fourth is refused.
    answers = [post(f"x{n}@example.com", "198.51.100.9", n + 10) for n in range(4)]
    assert [r.status_code for r in answers] == [302, 302, 302, 429]


def test_a_forged_or_foreign_link_does_nothing(client):
    sign_up(client)
    link = link_in(mail.outbox[0], "/accounts/verify/")
    other = User.objects.create_user("other", email="o@example.com", is_active=False)
    from accounts.verification import uid_encode

    token = link.rstrip("/").rsplit("/", 1)[1]
    assert client.get(f"/accounts/verify/{uid_encode(other)}/{token}/").status_code == 400
    assert confirm(client, f"/accounts/verify/{uid_encode(other)}/{token}/").status_code == 400
    assert client.get("/accounts/verify/zzz/nope/").status_code == 400
    other.refresh_from_db()
    assert not other.is_active


def test_the_link_can_be_sent_again_without_telling_who_signed_up(client):
    sign_up(client)
    first = link_in(mail.outbox[0], "/accounts/verify/")
    response = client.post("/accounts/signup/resend/", {"email": "NEW@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 2
    assert client.post("/accounts/signup/resend/",
                       {"email": "nobody@example.com"}).url == response.url
    assert len(mail.outbox) == 2
    assert confirm(client, link_in(mail.outbox[1], "/accounts/verify/")).status_code == 302
    assert client.get(first).status_code == 400  # used up with the account's activation


def test_an_account_an_admin_deactivated_stays_off(client, django_user_model):
    """Neither the old confirmation link nor a resent one brings it back."""
    sign_up(client)
    link = link_in(mail.outbox[0], "/accounts/verify/")
    assert confirm(client, link).status_code == 302
    client.logout()
    User.objects.filter(username="newshop").update(is_active=False)  # the admin's switch
    assert client.get(link).status_code == 400
    assert confirm(client, link).status_code == 400
    assert client.post("/accounts/signup/resend/", {"email": "new@example.com"}).status_code == 302
    admin_made = django_user_model.objects.create_user("made", email="m@example.com",
                                                       is_active=False)
    client.post("/accounts/signup/resend/", {"email": "m@example.com"})
    assert len(mail.outbox) == 1  # no new link for either
    assert not User.objects.get(username="newshop").is_active
    assert not User.objects.get(pk=admin_made.pk).is_active
    assert not signs_in("newshop", PASSWORD)


def test_sign_up_can_be_turned_off(client, settings):
    settings.ALLOW_SIGNUP = False
    clear_url_caches()
    assert client.get("/accounts/signup/").status_code == 404
    assert sign_up(client).status_code == 404
    login_page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/signup/' not in login_page
    assert "/accounts/password_reset/" in login_page
    settings.ALLOW_SIGNUP = True
    assert 'href="/accounts/signup/"' in client.get("/accounts/login/").content.decode()


def test_password_reset_by_email(client, django_user_model):
    django_user_model.objects.create_user("shop", email="shop@example.com",
                                          password="old-Password-1")
    response = client.post("/accounts/password_reset/", {"email": "shop@example.com"})
    assert response.status_code == 302 and response.url == "/accounts/password_reset/done/"
    assert client.get(response.url).status_code == 200
    assert mail.outbox[0].subject == "Reset your 360° spins password"
    link = link_in(mail.outbox[0], "/accounts/reset/")
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": PASSWORD,
                                                    "new_password2": PASSWORD})
    assert done.status_code == 302 and done.url == "/accounts/reset/done/"
    assert signs_in("shop", PASSWORD)
    assert not signs_in("shop", "old-Password-1")
    assert "does not work" in client.get(link, follow=True).content.decode()  # once


def test_password_reset_of_an_unknown_address_sends_nothing_and_says_the_same(client):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302 and response.url == "/accounts/password_reset/done/"
    assert mail.outbox == []


def test_password_change_when_signed_in(client, django_user_model):
    user = django_user_model.objects.create_user("shop", password="old-Password-1")
    assert client.get("/accounts/password_change/").status_code == 302  # sign in first
    client.force_login(user)
    wrong = client.post("/accounts/password_change/", {
        "old_password": "nope", "new_password1": PASSWORD, "new_password2": PASSWORD})
    assert wrong.status_code == 200 and "incorrectly" in wrong.content.decode()
    response = client.post("/accounts/password_change/", {
        "old_password": "old-Password-1", "new_password1": PASSWORD,
        "new_password2": PASSWORD})
    assert response.status_code == 302 and response.url == "/accounts/password_change/done/"
    assert client.get(response.url).status_code == 200  # still signed in
    assert signs_in("shop", PASSWORD)


@pytest.mark.parametrize(("url", "expected"), [
    ("", ["django.core.mail.backends.console.EmailBackend"]),
    ("smtp://shop:p%40ss@mail.example.com:587?tls=1",
     ["django.core.mail.backends.smtp.EmailBackend", "mail.example.com", 587, "shop", "p@ss",
      True, False]),
    ("smtp://shop:pw@mail.example.com:465?ssl=1",
     ["django.core.mail.backends.smtp.EmailBackend", "mail.example.com", 465, "shop", "pw",
      False, True]),
])
def test_email_url_sets_the_email_backend(url, expected):
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    names = ["EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER",
             "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL"][:len(expected)]
    out = subprocess.run(
        [sys.executable, "-c", "import json; from django.conf import settings as s; "
                               f"print(json.dumps([getattr(s, n) for n in {names!r}]))"],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "nerfsite.settings",
                       "EMAIL_URL": url}, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
