"""A shop owner's whole journey in a real browser, on the real worker and engine.

Sign in, create a product, upload the synthetic scene's photos, start a `test`-preset job,
watch the stage bars fill to 100% without reloading, then use the 360° viewer: drag it,
turn it with the keyboard, play it, switch its background, download a frame; and see how
faithful the spin is, photo beside render, on a desktop and a phone screen. CPU-sized:
the `test` preset trains 120 steps of 256 rays and renders 8 frames of 48 px, so the job
takes a few minutes here.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from pipeline.models import Job
from products.models import Product
from tests.browser.conftest import drag_across, sign_in
from tests.site.jobs_fixtures import delete_photo_files, storage
from tests.synthetic_scene import make_scene

__all__ = ["storage"]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

PASSWORD = "pw-shop-123"
# The upload rules ask for a short side of at least 640 px, so the scene is rendered at that.
PHOTO_SIZE = (854, 640)


@pytest.fixture(scope="module")
def scene_photos(tmp_path_factory) -> list[Path]:
    scene = make_scene(tmp_path_factory.mktemp("scene"), n_views=14,
                       width=PHOTO_SIZE[0], height=PHOTO_SIZE[1])
    return sorted(scene.images_dir.glob("*.png"))


@pytest.fixture
def worker(worker_env, storage, request):
    """The real django-q2 cluster (tests.conftest's qcluster) with this test's storage."""
    worker_env.update(storage, NERF_DEVICE="cpu")
    return request.getfixturevalue("qcluster")


@pytest.fixture
def owner(django_user_model):
    user = django_user_model.objects.create_user("shop", password=PASSWORD)
    yield user
    for product in Product.objects.filter(owner=user):
        delete_photo_files(product)


def test_photos_to_spin_in_the_browser(page, owner, worker, scene_photos, artifacts):
    # Sign in.
    sign_in(page, "shop", PASSWORD)

    # Create a product.
    page.goto("/products/new/")
    page.get_by_label("Name").fill("Box and ball")
    page.get_by_label("SKU").fill("BOX-1")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url(re.compile(r"/products/\d+/$"))
    product = Product.objects.get(owner=owner, sku="BOX-1")

    # Upload every photo at once through the file picker; each gets its own result.
    page.locator("[data-upload] input[type=file]:not([data-camera])").set_input_files(
        [str(p) for p in scene_photos])
    page.locator("[data-upload] button[type=submit]").click()
    results = page.locator("[data-results] li")
    results.nth(len(scene_photos) - 1).wait_for(timeout=120_000)
    assert product.photos.count() == len(scene_photos), results.all_inner_texts()
    page.screenshot(path=str(artifacts / "product-after-upload.png"), full_page=True)

    # Generate with the test preset: the estimate shows first, then the job starts.
    page.get_by_role("link", name="Generate 360°").click()
    page.get_by_label("Preset").select_option("test")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))
    job = Job.objects.get(product=product)
    bars = page.locator(".stage-bar")
    assert bars.count() == 4

    # The card refreshes itself: a stage shows as running at some point, without a reload.
    page.wait_for_selector(".stage-bar[data-state=running]", timeout=300_000)
    page.wait_for_selector("[data-spin-viewer][data-ready]", timeout=600_000)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert page.locator("[data-job-progress]").get_attribute("value") == "100"
    for i in range(4):
        assert bars.nth(i).get_attribute("data-state") == "done"
        assert bars.nth(i).locator("progress").get_attribute("value") == "100"
    assert page.locator(".loss-curve").count() == 1
    assert "spin-viewer.js" in page.locator("[data-embed-snippet]").inner_text()

    # Drag the viewer: the frame on screen changes.
    canvas = page.locator(".spin-canvas")
    canvas.scroll_into_view_if_needed()
    before = canvas.get_attribute("data-frame")
    drag_across(page, canvas)
    page.wait_for_function(
        "before => document.querySelector('.spin-canvas').dataset.frame !== before", arg=before)

    # The keyboard turns it too, once the drag's inertia has died down.
    page.wait_for_timeout(1500)
    canvas.focus()
    at = canvas.get_attribute("data-frame")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "at => document.querySelector('.spin-canvas').dataset.frame !== at", arg=at)

    # Play spins it on its own; the button says whether it is on.
    play = page.locator("[data-action=play]")
    play.click()
    assert play.get_attribute("aria-pressed") == "true" and play.inner_text() == "Pause"
    at = canvas.get_attribute("data-frame")
    page.wait_for_function(
        "at => document.querySelector('.spin-canvas').dataset.frame !== at", arg=at)
    play.click()
    assert play.get_attribute("aria-pressed") == "false"

    # Switch the background behind the transparent frames.
    viewer = page.locator("[data-spin-viewer]")
    first_background = viewer.get_attribute("data-background")
    page.locator("[data-action=background]").click()
    assert viewer.get_attribute("data-background") != first_background

    # Download the frame on screen: a transparent PNG of the job's size.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download this frame").click()
    data = Path(download_info.value.path()).read_bytes()
    with Image.open(io.BytesIO(data)) as frame:
        assert frame.format == "PNG" and frame.mode == "RGBA"
        assert frame.size == (job.frame_size, job.frame_size)
        alpha = frame.getchannel("A")
        assert alpha.getextrema()[0] == 0  # transparent around the product
        assert alpha.getextrema()[1] > 200  # and the product itself is there

    viewer.screenshot(path=str(artifacts / "viewer.png"))
    page.screenshot(path=str(artifacts / "job-page.png"), full_page=True)

    # How faithful the spin is: three photos, each beside the spin from its own camera, and
    # one verdict in words.
    comparison = page.locator("[data-comparison]")
    comparison.scroll_into_view_if_needed()
    verdict = comparison.locator("[data-verdict]").inner_text()
    assert re.match(r"(Faithful|Fair|Poor): ", verdict), verdict
    views = comparison.locator("[data-compared-view]")
    assert views.count() == 3
    assert re.search(r"Outline\s+(matches|close|differs) \(\d+% overlap\)",
                     views.first.inner_text())
    page.wait_for_function("() => [...document.querySelectorAll('[data-comparison] img')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    comparison.screenshot(path=str(artifacts / "comparison.png"))
    # On a phone each photo stacks above its render.
    page.set_viewport_size({"width": 390, "height": 844})
    photo, render = (views.first.locator("img").nth(i).bounding_box() for i in (0, 1))
    assert render["y"] >= photo["y"] + photo["height"] and abs(render["x"] - photo["x"]) < 2
    assert photo["x"] + photo["width"] <= 390
    comparison.screenshot(path=str(artifacts / "comparison-phone.png"))
    page.set_viewport_size({"width": 1280, "height": 900})

    # The product page now shows the spin and where the photos were taken.
    page.goto(product.get_absolute_url())
    page.wait_for_selector("[data-spin-viewer][data-ready]")
    assert page.locator("svg.camera-plot").count() == 1
    assert re.search(r"\d+ of 14 photos placed", page.locator("[data-poses-summary]").inner_text())
    page.screenshot(path=str(artifacts / "product-page.png"), full_page=True)
    # …and what the masks kept of each photo the spin learned from.
    masks = page.locator("[data-masks]")
    assert masks.locator("[data-mask]").count() >= 8
    for img in masks.locator("img").all():  # lazy: each loads once it nears the screen
        img.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('[data-masks] img')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")
    masks.screenshot(path=str(artifacts / "product-masks.png"))
