"""Playwright driving Debian's chromium (installed by `make browser`; nothing downloaded)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
# Flags for a closed network: without them chromium keeps dialling Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium():
    """Chromium for one test module.

    Playwright's sync API runs an event loop in this thread; the ORM calls made meanwhile
    (the test database's setup, the tests' own queries) are still synchronous, so Django's
    async-safety guard does not apply. It is lifted only while the browser runs, so no
    other test or child process inherits the setting.
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(chromium, live_server) -> Iterator:
    context = chromium.new_context(
        base_url=live_server.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# A phone-sized, touch-emulating screen (an iPhone's 390 × 844 CSS pixels at 3×).
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
         "is_mobile": True, "has_touch": True}


@pytest.fixture
def phone(chromium, live_server) -> Iterator:
    context = chromium.new_context(base_url=live_server.url, **PHONE)
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def sign_in(page, username: str, password: str, base: str = "") -> None:
    """Through the site's sign-in page, as a person does; lands on the product list."""
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_url(re.compile(r"/products/$"))


def drag_across(page, locator) -> None:
    """A mouse drag leftwards across the middle of `locator`, in ten moves."""
    box = locator.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.7, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (0.7 - 0.04 * step), y)
    page.mouse.up()
