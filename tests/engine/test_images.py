"""Reading, checking and normalizing the photos of a job."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from pipeline.engine.errors import InputError
from pipeline.engine.images import normalize_photos, pack_zip, resize_photo


def pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def jpeg_bytes(pixels: np.ndarray, orientation: int = 1, make: str = "") -> bytes:
    img = Image.fromarray(pixels)
    exif = img.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    if make:
        exif[0x010F], exif[0x0110] = make, "Phone 12"
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_exif_orientation_is_applied(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "portrait.jpg").write_bytes(jpeg_bytes(pattern(64, 48), orientation=6, make="ACME"))
    (src / "plain.jpg").write_bytes(jpeg_bytes(pattern(64, 48, 1)))
    photo_set = normalize_photos(src, tmp_path / "out")
    by_name = {p.name: p for p in photo_set.photos}
    # Orientation 6: stored landscape, shown rotated a quarter turn, so portrait.
    assert (by_name["portrait.jpg"].width, by_name["portrait.jpg"].height) == (48, 64)
    with Image.open(tmp_path / "out" / "portrait.jpg") as img:
        assert img.size == (48, 64)
        assert img.getexif().get(0x0112, 1) == 1
    assert by_name["portrait.jpg"].device == "ACME Phone 12"
    # Already upright: the bytes are kept, not re-encoded.
    assert (tmp_path / "out" / "plain.jpg").read_bytes() == (src / "plain.jpg").read_bytes()
    assert by_name["plain.jpg"].camera_key == ("", 64, 48)


def test_rgba_png_keeps_alpha_and_flattened_copies_drop_it(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgba = np.dstack([pattern(40, 30), np.full((30, 40), 0, np.uint8)])
    rgba[10:20, 10:30, 3] = 255
    Image.fromarray(rgba, "RGBA").save(src / "cutout.png")
    photo = normalize_photos(src, tmp_path / "out").photos[0]
    assert photo.has_alpha
    flat = tmp_path / "flat.png"
    assert resize_photo(tmp_path / "out" / "cutout.png", flat, 1600, flatten=True) == (40, 30)
    with Image.open(flat) as img:
        assert img.mode == "RGB"
        assert img.getpixel((0, 0)) == (128, 128, 128)  # transparent: grey


def test_resize_keeps_aspect_and_long_side(tmp_path):
    src = tmp_path / "big.jpg"
    src.write_bytes(jpeg_bytes(pattern(400, 300)))
    assert resize_photo(src, tmp_path / "small.jpg", 200, flatten=True) == (200, 150)
    with Image.open(tmp_path / "small.jpg") as img:
        assert img.size == (200, 150)


def test_non_photos_and_copies_are_skipped_with_a_warning(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(jpeg_bytes(pattern(32, 32)))
    (src / "b.jpg").write_bytes(jpeg_bytes(pattern(32, 32)))  # the same bytes as a.jpg
    (src / "notes.pdf").write_bytes(b"%PDF-1.4")
    (src / ".DS_Store").write_bytes(b"\x00")
    warnings: list[str] = []
    photo_set = normalize_photos(src, tmp_path / "out", warn=warnings.append)
    assert [p.name for p in photo_set.photos] == ["a.jpg"]
    assert photo_set.ignored == ["notes.pdf"] and photo_set.duplicates == ["b.jpg"]
    assert warnings == ["Ignored b.jpg: the same file as a.jpg.",
                        "Ignored notes.pdf: not a JPEG or PNG photo."]


def test_zip_members_get_safe_unique_names(tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../etc/shot 1.jpg", jpeg_bytes(pattern(16, 16, 1)))
        zf.writestr("day2/shot 1.JPEG", jpeg_bytes(pattern(16, 16, 2)))
        zf.writestr("__MACOSX/._shot.jpg", b"junk")
        zf.writestr("folder/", b"")
    photos = normalize_photos(archive, tmp_path / "out").photos
    assert sorted(p.name for p in photos) == ["shot_1.jpg", "shot_1_2.jpg"]
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["shot_1.jpg",
                                                                     "shot_1_2.jpg"]


def test_truncated_photo_is_rejected_by_name(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    data = jpeg_bytes(pattern(200, 200))
    (src / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="Photo cut.jpg is damaged or incomplete"):
        normalize_photos(src, tmp_path / "out")


def test_a_text_file_named_like_a_photo_is_rejected(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "fake.png").write_text("not really a picture")
    with pytest.raises(InputError, match="fake.png is damaged"):
        normalize_photos(src, tmp_path / "out")


def test_pack_zip_round_trip(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for n in range(3):
        (src / f"p{n}.jpg").write_bytes(jpeg_bytes(pattern(16, 16, n)))
    names = [p.name for p in normalize_photos(src, tmp_path / "out").photos]
    pack_zip(tmp_path / "out", names, tmp_path / "images.zip")
    again = normalize_photos(tmp_path / "images.zip", tmp_path / "again").photos
    assert [p.name for p in again] == names
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (src / name).read_bytes()


def test_missing_source_says_so(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        normalize_photos(tmp_path / "nowhere", tmp_path / "out")
