"""iPhone photos (HEIC) enter everywhere photos enter and are stored as upright JPEGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from products.models import Photo, Product
from tests.site.test_api import api_client
from tests.site.test_validation import make_zip, only_result, uploads_dir  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(django_user_model, uploads_dir) -> Product:  # noqa: F811 (the fixture)
    owner = django_user_model.objects.create_user("iphone", password="pw-iphone-123")
    return Product.objects.create(owner=owner, name="Vase", sku="VASE-1")

ROTATE_CW = 6  # EXIF orientation: "rotate 90° clockwise to display"


def sideways_picture(seed: int = 0) -> Image.Image:
    """800×640 noise with a solid red band across the top: which edge the band lands on
    after upload tells whether the orientation was applied, and which way."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 200, (640, 800, 3), dtype=np.uint8)
    pixels[:80] = (255, 0, 0)
    return Image.fromarray(pixels)


def heic(seed: int = 0, orientation: int = ROTATE_CW) -> bytes:
    """A real HEIC file, written by pillow-heif's encoder as a phone would save one."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    sideways_picture(seed).save(out, format="HEIF", quality=90, exif=exif.tobytes())
    data = out.getvalue()
    assert data[4:12] == b"ftypheic"
    return data


def assert_upright_jpeg(photo: Photo) -> None:
    """Rotated 90° clockwise, the band along the top now runs down the right edge."""
    assert (photo.width, photo.height) == (640, 800)
    assert photo.image.name.endswith(".jpg")
    with photo.image.open("rb") as f, Image.open(f) as stored:
        assert stored.format == "JPEG"
        assert stored.size == (640, 800)
        assert stored.getexif().get(0x0112, 1) == 1
        pixels = np.asarray(stored.convert("RGB"), dtype=int)
    right, left = pixels[:, -60:].mean(axis=(0, 1)), pixels[:, :60].mean(axis=(0, 1))
    assert right[0] > 230 and right[1] < 40, right  # red
    assert abs(left[0] - left[1]) < 40, left  # noise, not red


def test_heic_becomes_an_upright_jpeg_with_a_thumbnail(product):
    data = heic()
    result = only_result(product, "IMG_0001.HEIC", data)
    assert result.accepted, result.message
    photo = result.photo
    assert_upright_jpeg(photo)
    assert photo.original_name == "IMG_0001.HEIC"
    assert photo.byte_size == photo.image.size  # what is stored, not the HEIC upload
    assert photo.thumbnail_url


def test_the_same_heic_twice_is_a_duplicate(product):
    assert only_result(product, "a.heic", heic(1)).accepted
    again = only_result(product, "b.heic", heic(1))
    assert not again.accepted and again.rule == "duplicate"


def test_a_damaged_heic_is_refused_and_says_what_we_read(product):
    data = heic(2)
    result = only_result(product, "cut.heic", data[: len(data) // 3])
    assert not result.accepted
    assert result.rule in {"corrupt", "format"}, result.rule
    assert "cut.heic: " in result.message


def test_heic_through_the_page(client, product):
    client.force_login(product.owner)
    response = client.post(f"/products/{product.pk}/photos/",
                           {"files": [SimpleUploadedFile("IMG_0002.heic", heic(3))]},
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]
    assert result["accepted"], result
    assert_upright_jpeg(Photo.objects.get(product=product))
    page = client.get(f"/products/{product.pk}/").content.decode()
    assert "image/heic" in page  # the file picker offers HEIC


def test_heic_through_the_api_and_inside_a_zip(product: Product):
    api = api_client(product.owner)
    response = api.post(f"/api/products/{product.pk}/photos", {"files": [
        SimpleUploadedFile("IMG_0003.HEIC", heic(4)),
        SimpleUploadedFile("more.zip", make_zip({"trip/IMG_0004.heif": heic(5)})),
    ]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 0), body
    for photo in Photo.objects.filter(product=product):
        assert_upright_jpeg(photo)
