"""The storefront embed from another origin, and the Content-Security-Policy in the browser.

A plain web server on another port plays a shop: its page holds the embed snippet
docs/embedding.md gives, pointed at this site (the live server) and a finished job.
Chromium opens the shop's page, the viewer loads spin.json across origins, the shopper
turns the spin by dragging and with the keys, and the frames load: from this site when
they are on disk, from the bucket when they are on the S3-compatible server
(tests.s3_server). Then the site's own pages, the viewer and the admin run under the
site's policy without one violation.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from pipeline.delivery.storage import job_frames_relpath
from pipeline.models import Job
from products import services
from products.models import Product
from tests.browser.conftest import drag_across, sign_in
from tests.conftest import ROOT
from tests.s3_server import s3_buckets, s3_endpoint
from tests.site.jobs_fixtures import finished_frames, storage
from tests.site.test_validation import jpeg, uploads_dir

__all__ = ["s3_buckets", "s3_endpoint", "storage", "uploads_dir"]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(300),
              pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-shop-123"
FRAMES_PER_TURN = 12
# Records what the page's policy refuses, before any script of the page runs.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def docs_snippet() -> str:
    """The embed snippet exactly as docs/embedding.md gives it to shop owners."""
    page = (ROOT / "docs" / "embedding.md").read_text()
    return re.search(r"```html\n(.*?)```", page, re.S).group(1)


@pytest.fixture
def storefront(tmp_path) -> Iterator[tuple[str, Path]]:
    """A shop's web server on another origin (127.0.0.1, another port; the site is on
    localhost): serves the files of a folder, nothing else."""
    root = tmp_path / "shop"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["disk", "s3"])
def frames_origin(request, storage, live_server) -> str:
    """Where the frames are published, and the URL prefix they are loaded from."""
    if request.param == "disk":
        return f"{live_server.url}/frames/"
    buckets = request.getfixturevalue("s3_buckets")
    return f"{buckets.endpoint}/{buckets.frames}/"


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("shop", password=PASSWORD)


@pytest.fixture
def finished_job(owner, frames_origin, uploads_dir) -> Job:
    product = Product.objects.create(owner=owner, name="Box and ball", sku="BOX-1")
    services.add_photos(product, [SimpleUploadedFile("IMG_0001.jpg", jpeg(1))])
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED, frame_size=64,
                             frame_count=FRAMES_PER_TURN)
    finished_frames(job, rows=1, per_row=FRAMES_PER_TURN, size=64)
    return job


class Watch:
    """What a page loads and what its console and policy say."""

    def __init__(self, page) -> None:
        self.page = page
        self.loaded: list[str] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)
        page.on("console", self._console)

    def _response(self, response) -> None:
        # Neither the shop's test server nor the site has a favicon; chromium asks anyway.
        if not response.url.endswith("/favicon.ico"):
            (self.failed if response.status >= 400 else self.loaded).append(response.url)

    def _request_failed(self, request) -> None:
        # Leaving a page cancels what it was still loading (lazy images): not a failure.
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"{request.url} {request.failure}")

    def _console(self, message) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith(
                "/favicon.ico"):
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def frames_loaded(self, prefix: str, job: Job) -> list[str]:
        return [u for u in self.loaded if u.startswith(f"{prefix}{job_frames_relpath(job)}/")]

    def assert_clean(self) -> None:
        violations = self.page.evaluate("window.__cspViolations")
        assert violations == [], violations
        assert self.console_errors == [], self.console_errors
        assert self.failed == [], self.failed


def turn(page) -> None:
    """The right arrow, then a drag: each must change the frame on screen. Keys first, so
    that no inertia from the drag turns it meanwhile."""
    canvas = page.locator(".spin-canvas")
    canvas.focus()
    at = canvas.get_attribute("data-frame")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "at => document.querySelector('.spin-canvas').dataset.frame !== at", arg=at)
    before = canvas.get_attribute("data-frame")
    drag_across(page, canvas)
    page.wait_for_function(
        "before => document.querySelector('.spin-canvas').dataset.frame !== before", arg=before)


def test_embed_on_another_origin_turns_and_loads_frames(
        chromium, live_server, storefront, frames_origin, finished_job, owner, artifacts,
        django_user_model, request):
    shop_url, shop_root = storefront
    snippet = (docs_snippet().replace("https://spins.example.com", live_server.url)
               .replace("JOB-ID", str(finished_job.pk)))
    (shop_root / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>A shop</title></head>"
        f"<body><h1>Box and ball</h1>{snippet}</body></html>")
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    watch = Watch(page)

    # The shop's page: spin.json across origins, then the frames, wherever they live.
    page.goto(f"{shop_url}/index.html")
    page.wait_for_selector("[data-spin-viewer][data-ready]")
    page.wait_for_selector("[data-spin-viewer][data-previews-loaded]")
    turn(page)
    loaded = watch.frames_loaded(frames_origin, finished_job)
    assert any(u.endswith("/sprite.webp") for u in loaded), loaded
    assert len({u for u in loaded if "/previews/" in u}) == FRAMES_PER_TURN, loaded
    assert any(u.endswith(".png") and "/frames/frame_" in u for u in loaded), loaded
    assert f"{live_server.url}/jobs/{finished_job.pk}/spin.json" in watch.loaded
    # "Download this frame" opens the frame beside the shop's page, never in its place.
    with context.expect_page() as opened:
        page.get_by_role("link", name="Download this frame").click()
    frame = opened.value
    frame.wait_for_load_state()
    assert frame.url.startswith(frames_origin) and frame.url.endswith(".png"), frame.url
    assert page.url == f"{shop_url}/index.html"
    frame.close()
    where = request.node.callspec.params["frames_origin"]
    page.locator("[data-spin-viewer]").screenshot(
        path=str(artifacts / f"storefront-embed-{where}.png"))
    watch.assert_clean()

    # The site's own pages under its policy: the owner's, with the viewer and a photo.
    page = context.new_page()
    watch = Watch(page)
    sign_in(page, "shop", PASSWORD, base=live_server.url)
    product = finished_job.product
    for path in ("/products/", product.get_absolute_url(), "/accounts/tokens/",
                 finished_job.get_absolute_url()):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    page.wait_for_selector("[data-spin-viewer][data-ready]")
    page.wait_for_selector("[data-spin-viewer][data-previews-loaded]")
    turn(page)
    assert watch.frames_loaded(frames_origin, finished_job)
    photo = product.photos.get()
    assert f"{live_server.url}{photo.thumbnail_url}" in watch.loaded
    watch.assert_clean()

    # The admin and the API docs, as staff.
    django_user_model.objects.create_superuser("admin", password=PASSWORD)
    page = context.new_page()
    watch = Watch(page)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    for path in ("/admin/products/product/", f"/admin/products/product/{product.pk}/change/",
                 "/admin/pipeline/job/", "/api/docs"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    watch.assert_clean()
    page.wait_for_selector("#swagger-ui .opblock")
    context.close()
