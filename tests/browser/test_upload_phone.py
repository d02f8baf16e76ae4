"""Uploading from a phone: the camera control, HEIC, and retrying one failed file.

A phone-sized, touch-emulating chromium. The connection drop is made at the network edge
(Playwright aborts one request before it leaves the browser); everything behind it is the
real site.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from products.models import Product
from tests.browser.conftest import sign_in
from tests.site.jobs_fixtures import delete_photo_files
from tests.site.test_heic import heic

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PASSWORD = "pw-phone-123"


@pytest.fixture
def owner(django_user_model):
    user = django_user_model.objects.create_user("phone", password=PASSWORD)
    yield user
    for product in Product.objects.filter(owner=user):
        delete_photo_files(product)


def photo_file(folder: Path, name: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path = folder / name
    Image.fromarray(rng.integers(0, 256, (720, 960, 3), dtype=np.uint8)).save(path, quality=85)
    return path


def test_camera_heic_and_retry_of_one_failed_file(phone, owner, tmp_path, artifacts):
    product = Product.objects.create(owner=owner, name="Teapot", sku="TEA-1")
    sign_in(phone, "phone", PASSWORD)
    phone.goto(f"/products/{product.pk}/")

    # The camera control asks the phone for its back camera.
    camera = phone.locator("[data-upload] input[data-camera]")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"

    # The connection drops while the second photo is sent, once.
    dropped = []

    def drop_once(route):
        if b'filename="b.jpg"' in (route.request.post_data_buffer or b"") and not dropped:
            dropped.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    phone.route(re.compile(r".*/photos/$"), drop_once)
    picker = phone.locator("[data-upload] input[type=file]:not([data-camera])")
    picker.set_input_files([str(photo_file(tmp_path, "a.jpg", 1)),
                            str(photo_file(tmp_path, "b.jpg", 2))])
    phone.get_by_text("Done: 1 added, 1 not added.").wait_for()
    assert dropped
    failed = phone.locator("[data-results] li.error")
    assert "b.jpg: the upload was interrupted" in failed.inner_text()
    phone.screenshot(path=str(artifacts / "upload-phone-retry.png"), full_page=True)

    # Retry sends that file alone; its line turns into the new result, the first one stays.
    phone.get_by_role("button", name="Retry b.jpg").click()
    phone.get_by_text("b.jpg: added.").wait_for()
    assert phone.locator("[data-results] li.error").count() == 0
    assert phone.get_by_text("a.jpg: added.").count() == 1
    assert product.photos.count() == 2

    # A shot from the camera arrives as the phone saves it: HEIC.
    shot = tmp_path / "IMG_0001.HEIC"
    shot.write_bytes(heic(7))
    camera.set_input_files(str(shot))
    phone.get_by_text("IMG_0001.HEIC: added.").wait_for()
    assert phone.locator("[data-photo-count]").inner_text() == "3"
    assert product.photos.count() == 3
    assert product.photos.get(original_name="IMG_0001.HEIC").image.name.endswith(".jpg")
