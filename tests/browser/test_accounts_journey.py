"""A new shop owner in the browser: signs up, confirms the address with the link from the
test mailbox, adds a webhook and sends it a test event, signs out, resets the password by
email and signs in with the new one. Screenshots of each new page in test-artifacts/."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.utils.module_loading import import_string
from playwright.sync_api import expect

from tests.site.jobs_fixtures import drain_queue
from tests.site.webhook_receiver import receiver

__all__ = ["receiver"]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

FIRST_PASSWORD = "Teapots-Spin-2026"
NEW_PASSWORD = "Kettles-Turn-2027"


def last_link(path: str) -> str:
    """The link to `path` in the newest email: live_server runs in this process, so the
    locmem outbox it writes to is this one."""
    return re.search(rf"https?://\S+{re.escape(path)}\S+", mail.outbox[-1].body).group(0)


def test_sign_up_verify_reset_and_sign_in(page, live_server, artifacts, receiver, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the receiver is on 127.0.0.1

    page.goto("/accounts/login/")
    page.screenshot(path=str(artifacts / "accounts-login-links.png"), full_page=True)
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("newshop")
    page.get_by_label("Email").fill("owner@example.com")
    page.get_by_label("Password", exact=True).fill(FIRST_PASSWORD)
    page.get_by_label("Password confirmation").fill(FIRST_PASSWORD)
    page.screenshot(path=str(artifacts / "accounts-signup.png"), full_page=True)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Confirm your email")).to_be_visible()
    expect(page.get_by_text("owner@example.com")).to_be_visible()
    page.screenshot(path=str(artifacts / "accounts-signup-done.png"), full_page=True)

    assert mail.outbox[-1].to == ["owner@example.com"]
    page.goto(last_link("/accounts/verify/"))
    # The link asks for the password chosen at sign-up: a stranger who used this address
    # cannot have their account switched on by the mailbox's owner clicking it.
    page.get_by_label("Your password").fill(FIRST_PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Your email address is confirmed")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out newshop")).to_be_visible()

    # The user's page: a webhook endpoint, its secret shown once, a test event delivered.
    page.get_by_role("link", name="Notifications").click()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("storefront")
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.get_by_label("Signing secret")
    expect(secret).to_have_value(re.compile(r"^whsec_"))
    secret.click()  # selects it all, ready to copy (a script file, as the CSP requires)
    assert secret.evaluate("f => f.selectionEnd - f.selectionStart") == len(secret.input_value())
    page.screenshot(path=str(artifacts / "notifications-secret-once.png"), full_page=True)
    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text("A test event is on its way")).to_be_visible()
    for task in drain_queue():  # what the worker does with the queued delivery
        import_string(task["func"])(*task["args"])
    assert len(receiver.requests) == 1
    page.reload()
    log = page.get_by_role("table", name="Webhook deliveries")
    expect(log.get_by_text("HTTP 200")).to_be_visible()
    expect(log.get_by_text("webhook.test")).to_be_visible()
    page.screenshot(path=str(artifacts / "notifications-delivery-log.png"), full_page=True)

    page.goto("/accounts/password_change/")
    page.screenshot(path=str(artifacts / "accounts-password-change.png"), full_page=True)

    page.get_by_role("button", name="Sign out newshop").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("owner@example.com")
    page.screenshot(path=str(artifacts / "accounts-password-reset.png"), full_page=True)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.screenshot(path=str(artifacts / "accounts-password-reset-sent.png"), full_page=True)

    page.goto(last_link("/accounts/reset/"))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.screenshot(path=str(artifacts / "accounts-password-reset-confirm.png"),
                    full_page=True)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Password set")).to_be_visible()
    page.screenshot(path=str(artifacts / "accounts-password-reset-complete.png"),
                    full_page=True)

    page.get_by_role("link", name="Sign in").last.click()
    page.get_by_label("Username").fill("newshop")
    page.get_by_label("Password").fill(FIRST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    page.get_by_label("Username").fill("newshop")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out newshop")).to_be_visible()
