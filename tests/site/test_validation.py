"""Every upload rule, with its message, through products.services.add_photos (the code the
pages and the API share), on the real database and a real upload folder."""

from __future__ import annotations

import io
import re
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from products import services, validation
from products.models import Photo, Product

pytestmark = pytest.mark.django_db


# --- Real images, made with Pillow ----------------------------------------------------
def noise(width: int = 960, height: int = 720, seed: int = 0) -> Image.Image:
    """Random RGB noise: real pixels that compress badly, like a photo."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def image_bytes(fmt: str = "JPEG", width: int = 960, height: int = 720, seed: int = 0,
                **save) -> bytes:
    out = io.BytesIO()
    noise(width, height, seed).save(out, format=fmt, **save)
    return out.getvalue()


def jpeg(seed: int = 0, width: int = 960, height: int = 720, **save) -> bytes:
    return image_bytes("JPEG", width, height, seed, **{"quality": 80, **save})


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def make_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming `width`×`height` whose pixels are a few KB of zeros: a decompression
    bomb (it would expand to width × height bytes if decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 65536, 9)) + chunk(b"IEND", b""))


# --- Fixtures --------------------------------------------------------------------------
@pytest.fixture
def uploads_dir(settings, tmp_path) -> Path:
    """Photos go to a fresh folder."""
    settings.STORAGES = {**settings.STORAGES, "photos": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": tmp_path / "uploads"}}}
    return tmp_path / "uploads"


@pytest.fixture
def product(django_user_model, uploads_dir) -> Product:
    owner = django_user_model.objects.create_user("shop", password="pw-shop-123")
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def only_result(product: Product, name: str, data: bytes) -> services.FileResult:
    results = services.add_photos(product, [upload(name, data)])
    assert len(results) == 1
    return results[0]


def assert_refused(product, uploads_dir, name, data, rule, *words) -> services.FileResult:
    before = stored_files(uploads_dir)
    result = only_result(product, name, data)
    assert not result.accepted
    assert result.rule == rule
    assert result.message.startswith(f"{name}: ")
    for word in words:
        assert word in result.message, result.message
    assert stored_files(uploads_dir) == before, "a refusal left files behind"
    return result


# --- Accepted photos -------------------------------------------------------------------
@pytest.mark.parametrize("fmt,name", [("JPEG", "a.jpg"), ("PNG", "b.png"), ("WEBP", "c.webp")])
def test_jpeg_png_and_webp_are_accepted_and_stored_with_a_thumbnail(product, uploads_dir, fmt,
                                                                     name):
    data = image_bytes(fmt, quality=80) if fmt != "PNG" else image_bytes(fmt)
    result = only_result(product, name, data)
    assert result.accepted, result.message
    photo = Photo.objects.get(product=product)
    assert (photo.width, photo.height, photo.original_name) == (960, 720, name)
    assert photo.byte_size == len(data)
    stored = Path(photo.image.path)
    assert stored.read_bytes() == data  # upright and RGB: kept byte for byte
    assert stored.suffix == {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[fmt]
    assert re.fullmatch(r"[0-9a-f]{32}\.(jpg|png|webp)", stored.name)  # no user text
    thumb = stored.with_name(stored.stem + ".thumb.jpg")
    with Image.open(thumb) as t:
        assert max(t.size) == 360
    assert stored_files(uploads_dir) == sorted([stored, thumb])


def test_exif_orientation_is_applied_to_the_stored_photo(product):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = jpeg(width=800, height=640, exif=exif.tobytes())
    result = only_result(product, "sideways.jpg", data)
    assert result.accepted, result.message
    photo = result.photo
    assert (photo.width, photo.height) == (640, 800)
    with Image.open(photo.image.path) as stored:
        assert stored.size == (640, 800)
        assert stored.getexif().get(0x0112, 1) == 1


# --- Refusals, one rule each ------------------------------------------------------------
def test_file_size_limit(product, uploads_dir, settings):
    settings.PHOTO_MAX_BYTES = 50_000
    data = jpeg(quality=95)
    assert len(data) > 50_000
    assert_refused(product, uploads_dir, "big.jpg", data, "file_size",
                   "a photo may be at most 0.0 MB")


def test_short_side(product, uploads_dir):
    assert_refused(product, uploads_dir, "small.jpg", jpeg(width=900, height=639), "short_side",
                   "is 900×639 px", "at least 640 px")


def test_decompression_bomb_is_refused_before_decoding(product, uploads_dir):
    bomb = png_header_only(9_000, 9_000)  # 81 MP in a few KB
    assert len(bomb) < 10_000
    started = time.monotonic()
    assert_refused(product, uploads_dir, "bomb.png", bomb, "megapixels",
                   "9000×9000 px", "81.0 megapixels", "at most 50 megapixels")
    assert time.monotonic() - started < 2  # decoding 400 MB would take far longer


def test_a_bomb_beyond_pillows_own_limit_gets_the_same_rule(product, uploads_dir):
    assert_refused(product, uploads_dir, "huge.png", png_header_only(100_000, 100_000),
                   "megapixels", "has 10000.0 megapixels", "at most 50 megapixels")


def test_truncated_file(product, uploads_dir):
    data = jpeg()
    assert_refused(product, uploads_dir, "cut.jpg", data[: len(data) // 2], "corrupt",
                   "truncated or damaged")


def test_not_an_image(product, uploads_dir):
    assert_refused(product, uploads_dir, "notes.jpg", b"just some text, not a photo",
                   "format", "not a JPEG, PNG, WebP or HEIC photo")


def test_gif_is_not_accepted(product, uploads_dir):
    assert_refused(product, uploads_dir, "a.gif", image_bytes("GIF"), "format")


def test_empty_file(product, uploads_dir):
    assert_refused(product, uploads_dir, "empty.jpg", b"", "empty", "is empty")


def test_animated_png(product, uploads_dir):
    out = io.BytesIO()
    noise(800, 640, 1).save(out, format="PNG", save_all=True,
                            append_images=[noise(800, 640, 2)])
    assert_refused(product, uploads_dir, "anim.png", out.getvalue(), "animated", "animated")


def test_duplicates_within_one_upload_and_against_the_product(product, uploads_dir):
    first = services.add_photos(product, [upload("one.jpg", jpeg(1)),
                                          upload("again.jpg", jpeg(1))])
    assert [r.accepted for r in first] == [True, False]
    assert first[1].rule == "duplicate"
    assert first[1].message == ("again.jpg: is the same photo as one.jpg, which is already "
                                "on this product; it was skipped.")
    later = assert_refused(product, uploads_dir, "copy.jpg", jpeg(1), "duplicate", "one.jpg")
    assert later
    assert product.photos.count() == 1


def count_decodes(monkeypatch, delay: float = 0.0) -> list[str]:
    """The names check_image (the decoding) is called with, each call `delay` s slower."""
    calls: list[str] = []
    real = validation.check_image

    def counted(name, data):
        calls.append(name)
        time.sleep(delay)
        return real(name, data)

    monkeypatch.setattr(validation, "check_image", counted)
    return calls


def test_duplicates_are_recognised_before_decoding(product, uploads_dir, monkeypatch):
    # 250 copies in a zip once took longer than 80 distinct photos: each was decoded first.
    services.add_photos(product, [upload("one.jpg", jpeg(1))])
    decoded = count_decodes(monkeypatch)
    results = services.add_photos(product, [
        upload("again.jpg", jpeg(1)),
        upload("copies.zip", make_zip({f"copy{i}.jpg": jpeg(1) for i in range(20)})),
        upload("two.jpg", jpeg(2))])
    assert [r.rule for r in results] == ["duplicate"] * 21 + [None]
    assert decoded == ["two.jpg"]
    assert product.photos.count() == 2


def test_an_upload_stops_at_its_time_limit_and_keeps_what_it_checked(product, uploads_dir,
                                                                   monkeypatch, settings):
    settings.UPLOAD_TIME_LIMIT_SECONDS = 1
    decoded = count_decodes(monkeypatch, delay=0.4)
    started = time.monotonic()
    results = services.add_photos(product, [
        upload(f"{i}.jpg", jpeg(i)) for i in range(4)] + [
        upload("more.zip", make_zip({f"z{i}.jpg": jpeg(10 + i) for i in range(10)}))])
    assert time.monotonic() - started < 2.5
    assert len(decoded) == 3  # at 0, 0.4 and 0.8 s; then the time is up
    assert [r.accepted for r in results] == [True] * 3 + [False] * 11
    assert {r.rule for r in results[3:]} == {"time_limit"}
    assert "time limit of 1 s. Upload it again" in results[3].message
    assert product.photos.count() == 3


def test_a_product_deleted_during_its_upload_keeps_no_files(product, uploads_dir,
                                                              monkeypatch):
    real = validation.check_image

    def delete_meanwhile(name, data):
        checked = real(name, data)
        Product.objects.filter(pk=product.pk).delete()  # another request, meanwhile
        return checked

    monkeypatch.setattr(validation, "check_image", delete_meanwhile)
    with pytest.raises(services.ProductError, match="was deleted while its photos"):
        services.add_photos(product, [upload("a.jpg", jpeg(1))])
    assert stored_files(uploads_dir) == []


def test_photo_limit_per_product(product, uploads_dir, settings):
    settings.PHOTOS_PER_PRODUCT_MAX = 2
    results = services.add_photos(product, [upload(f"{i}.jpg", jpeg(i)) for i in range(3)])
    assert [r.accepted for r in results] == [True, True, False]
    assert results[2].rule == "photo_limit"
    assert "at most 2 photos" in results[2].message
    assert product.photos.count() == 2
    assert len(stored_files(uploads_dir)) == 4  # two photos, two thumbnails


def test_one_bad_file_does_not_stop_the_others(product):
    results = services.add_photos(product, [upload("good.jpg", jpeg(1)),
                                            upload("bad.jpg", b"nope"),
                                            upload("good2.jpg", jpeg(2))])
    assert [r.accepted for r in results] == [True, False, True]
    assert list(product.photos.values_list("position", flat=True)) == [1, 2]


def test_an_unexpected_failure_rolls_back_the_whole_batch_and_its_files(product, uploads_dir,
                                                                       monkeypatch):
    calls = {"n": 0}
    real_save = Photo.save

    def failing_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Photo, "save", failing_save)
    with pytest.raises(OSError):
        services.add_photos(product, [upload("a.jpg", jpeg(1)), upload("b.jpg", jpeg(2))])
    assert product.photos.count() == 0
    assert stored_files(uploads_dir) == []


# --- Zip archives ------------------------------------------------------------------------
def test_zip_photos_are_judged_one_by_one(product, uploads_dir):
    data = make_zip({"shots/1.jpg": jpeg(1), "shots/2.png": image_bytes("PNG", seed=2),
                     "readme.txt": b"hello", "__MACOSX/._1.jpg": b"junk"})
    results = services.add_photos(product, [upload("shots.zip", data)])
    by_name = {r.name: r for r in results}
    assert set(by_name) == {"shots.zip › shots/1.jpg", "shots.zip › shots/2.png",
                            "shots.zip › readme.txt"}
    assert by_name["shots.zip › shots/1.jpg"].accepted
    assert by_name["shots.zip › shots/2.png"].accepted
    assert by_name["shots.zip › readme.txt"].rule == "format"
    assert product.photos.count() == 2


def test_zip_with_path_traversal_is_refused_whole(product, uploads_dir):
    data = make_zip({"ok.jpg": jpeg(1), "../../etc/evil.jpg": jpeg(2)})
    result = assert_refused(product, uploads_dir, "trip.zip", data, "zip_path",
                            "“../../etc/evil.jpg”", "points outside the archive",
                            "the whole archive was refused")
    assert result
    assert product.photos.count() == 0


def test_zip_with_an_absolute_path_is_refused(product, uploads_dir):
    assert_refused(product, uploads_dir, "abs.zip", make_zip({"/tmp/x.jpg": jpeg(1)}),
                   "zip_path")


def test_nested_archive_is_refused(product, uploads_dir):
    inner = make_zip({"a.jpg": jpeg(1)})
    results = services.add_photos(product, [upload("outer.zip", make_zip(
        {"inner.zip": inner, "disguised.jpg": inner, "b.jpg": jpeg(2)}))])
    rules = {r.name: r.rule for r in results}
    assert rules == {"outer.zip › inner.zip": "nested_archive",
                     "outer.zip › disguised.jpg": "nested_archive", "outer.zip › b.jpg": None}
    assert "archive inside the archive" in results[0].message


def test_zip_entry_count_limit(product, uploads_dir, settings):
    settings.ZIP_MAX_ENTRIES = 2
    data = make_zip({f"{i}.jpg": jpeg(i) for i in range(3)})
    assert_refused(product, uploads_dir, "many.zip", data, "zip_entries", "holds 3 files",
                   "at most 2")


def test_zip_uncompressed_size_limit(product, uploads_dir, settings):
    settings.ZIP_MAX_UNCOMPRESSED_BYTES = 1_000_000
    data = make_zip({"zeros.jpg": b"\x00" * 2_000_000})  # compresses to a few KB
    assert len(data) < 20_000
    assert_refused(product, uploads_dir, "zipbomb.zip", data, "zip_uncompressed_size",
                   "unpacks to 1.9 MB")


def test_corrupt_zip(product, uploads_dir):
    assert_refused(product, uploads_dir, "broken.zip", b"PK\x03\x04 not really a zip",
                   "zip_invalid", "not a readable .zip")


def test_zip_entry_over_the_photo_size_limit(product, uploads_dir, settings):
    settings.PHOTO_MAX_BYTES = 50_000
    results = services.add_photos(product, [upload("z.zip", make_zip(
        {"big.jpg": jpeg(quality=95)}))])
    assert results[0].rule == "file_size"
    assert results[0].name == "z.zip › big.jpg"
