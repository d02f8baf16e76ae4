"""The rules an uploaded photo must pass: one module, used by the pages and the API.

Every refusal is a `Rejected` that names the file and the rule and says what to do, so the
page and the API show the same words. Nothing here touches the disk or the database; the
caller (products/services.py) stores what passes.

Limits come from settings (PHOTO_MAX_BYTES, PHOTO_MIN_SHORT_SIDE, PHOTO_MAX_PIXELS,
PHOTOS_PER_PRODUCT_MAX, ZIP_MAX_BYTES, ZIP_MAX_ENTRIES, ZIP_MAX_UNCOMPRESSED_BYTES), read at
call time so tests and deployments can change them.

HEIC/HEIF (an iPhone's default) is read through pillow-heif and stored as JPEG, upright:
neither COLMAP, nerfstudio nor most browsers read HEIC, and decoding it once here keeps
every later reader on formats they know.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import stat
import time
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

import pillow_heif
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

# Teaches Pillow to open HEIC/HEIF. pillow-heif applies the file's rotation (irot/imir, or
# the EXIF orientation it was saved with) while decoding and resets the EXIF tag to 1.
pillow_heif.register_heif_opener()

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# Formats stored as they were uploaded (when upright); anything else is re-encoded to
# STORED_AS's format once.
KEPT_FORMATS = ("JPEG", "PNG", "WEBP")
STORED_AS = {"HEIF": "JPEG"}
# Phones write MPO (a JPEG with extra depth or preview pictures); its first picture is a JPEG.
JPEG_LIKE = ("JPEG", "MPO")
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!", b"BZh",
                 b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Folders and files operating systems add to archives on their own; not the user's photos.
ARCHIVE_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
ORIENTATION_TAG = 0x0112
STORED_MODES = ("RGB", "RGBA", "L")

GUIDANCE = "20–100 photos, walk all around the product, each shot overlapping the last."
GUIDANCE_MIN, GUIDANCE_MAX = 20, 100


def photo_advice(count: int) -> str:
    """What the count means against the guidance (static/js/upload.js says the same)."""
    if count < GUIDANCE_MIN:
        return f"Add at least {GUIDANCE_MIN - count} more."
    if count <= GUIDANCE_MAX:
        return "Enough photos for a spin."
    return "More than 100 photos: fine, but the job takes longer."


class Rule:
    """Short, stable names for the rules; the API returns them beside the message."""

    FILE_SIZE = "file_size"
    EMPTY = "empty"
    FORMAT = "format"
    MEGAPIXELS = "megapixels"
    SHORT_SIDE = "short_side"
    ANIMATED = "animated"
    CORRUPT = "corrupt"
    DUPLICATE = "duplicate"
    PHOTO_LIMIT = "photo_limit"
    TIME_LIMIT = "time_limit"
    NESTED_ARCHIVE = "nested_archive"
    ZIP_INVALID = "zip_invalid"
    ZIP_SIZE = "zip_size"
    ZIP_ENTRIES = "zip_entries"
    ZIP_UNCOMPRESSED = "zip_uncompressed_size"
    ZIP_PATH = "zip_path"
    ZIP_LINK = "zip_link"
    ZIP_ENCRYPTED = "zip_encrypted"


class Rejected(Exception):
    """A file (or a whole archive) that breaks a rule."""

    def __init__(self, name: str, rule: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.rule = rule
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class CheckedImage:
    """A photo that passed every per-file rule, ready to store."""

    name: str
    """The name the user gave it (for messages only; never part of a path)."""
    data: bytes
    """What to store: the upload itself, or a re-encoding when orientation or colour mode
    had to be normalized."""
    image: Image.Image
    """The decoded, upright picture (for thumbnails); the caller closes it."""
    format: str
    width: int
    height: int
    sha256: str
    """Of the uploaded bytes, so uploading the same file twice is caught."""

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def is_archive(name: str, head: bytes) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES) or head.startswith(ARCHIVE_MAGIC)


def is_zip(name: str, head: bytes) -> bool:
    return name.lower().endswith(".zip") or head.startswith(ZIP_MAGIC)


# --- One image ---------------------------------------------------------------------


def check_size(name: str, size: int) -> None:
    limit = settings.PHOTO_MAX_BYTES
    if size > limit:
        raise Rejected(name, Rule.FILE_SIZE,
                       f"is {megabytes(size)}; a photo may be at most {megabytes(limit)}. "
                       "Export it at a lower quality or resolution.")
    if size == 0:
        raise Rejected(name, Rule.EMPTY, "is empty (0 bytes). Upload the photo again.")


def check_image(name: str, data: bytes) -> CheckedImage:
    """Apply every per-file rule to one upload; raise Rejected on the first one broken.

    The size and pixel limits are checked from the file's header, before decoding, so a
    decompression bomb never gets expanded in memory.
    """
    check_size(name, len(data))
    image = open_header(name, data)
    try:
        check_pixels(name, *image.size)
        if getattr(image, "is_animated", False) and image.format not in JPEG_LIKE:
            raise Rejected(name, Rule.ANIMATED, "is animated; upload still photos only.")
        try:
            image.load()  # the full decode: truncated and damaged files fail here
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            raise Rejected(name, Rule.CORRUPT,
                           "is truncated or damaged and could not be read in full. "
                           "Copy it from the camera or phone again.") from None
        fmt = "JPEG" if image.format in JPEG_LIKE else str(image.format)
        upright, stored = normalize(image, data, fmt)
        fmt = STORED_AS.get(fmt, fmt)
    except BaseException:
        image.close()
        raise
    if upright is not image:
        image.close()
    return CheckedImage(name=name, data=stored, image=upright, format=fmt,
                        width=upright.width, height=upright.height, sha256=digest(data))


def digest(data: bytes) -> str:
    """The sha256 that identifies a photo: of the bytes uploaded, so the same file sent
    twice is caught before it is decoded again."""
    return hashlib.sha256(data).hexdigest()


def open_header(name: str, data: bytes) -> Image.Image:
    """Open the file and read its header only; refuse what is not a photo we take."""
    if is_archive(name, data[:8]):
        raise Rejected(name, Rule.FORMAT,
                       "is an archive of a kind we do not take. Upload photos, or one .zip "
                       "holding only photos.")
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice that; ours is checked next.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except Image.DecompressionBombError as exc:
            # Beyond Pillow's own limit it refuses to open the file at all; its message
            # carries the pixel count.
            pixels = re.search(r"\((\d+) pixels\)", str(exc))
            raise Rejected(name, Rule.MEGAPIXELS, too_many_pixels_reason(
                None, int(pixels.group(1)) if pixels else None)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise Rejected(name, Rule.FORMAT,
                           "is not a JPEG, PNG, WebP or HEIC photo. Upload the photos as "
                           "the camera saved them.") from None


def too_many_pixels_reason(size: tuple[int, int] | None, pixels: int | None = None) -> str:
    limit_mp = settings.PHOTO_MAX_PIXELS / 1_000_000
    if size:
        has = f"is {size[0]}×{size[1]} px ({size[0] * size[1] / 1_000_000:.1f} megapixels)"
    elif pixels:
        has = f"has {pixels / 1_000_000:.1f} megapixels"
    else:
        has = "has far too many pixels"
    return (f"{has}; a photo may have at most {limit_mp:g} megapixels. "
            "Export it at a lower resolution.")


def check_pixels(name: str, width: int, height: int) -> None:
    if width * height > settings.PHOTO_MAX_PIXELS:
        raise Rejected(name, Rule.MEGAPIXELS, too_many_pixels_reason((width, height)))
    short = settings.PHOTO_MIN_SHORT_SIDE
    if min(width, height) < short:
        raise Rejected(name, Rule.SHORT_SIDE,
                       f"is {width}×{height} px; its short side must be at least {short} px. "
                       "Upload the original photo, not a resized copy.")


def normalize(image: Image.Image, data: bytes, fmt: str) -> tuple[Image.Image, bytes]:
    """Return the upright picture and the bytes to store.

    The upload is kept byte for byte unless its EXIF orientation is not "upright", its
    colour mode is one the engine does not read (CMYK, 16-bit, palette) or its format is
    not one we keep (HEIC); then it is re-encoded once, upright, with its colour profile
    and the rest of its EXIF.
    """
    orientation = image.getexif().get(ORIENTATION_TAG, 1)
    if orientation in (1, None) and image.mode in STORED_MODES and fmt in KEPT_FORMATS:
        return image, data
    fmt = STORED_AS.get(fmt, fmt)
    upright = ImageOps.exif_transpose(image) or image
    if upright.mode not in STORED_MODES or (fmt == "JPEG" and upright.mode == "RGBA"):
        has_alpha = "A" in upright.getbands() or "transparency" in upright.info
        upright = upright.convert("RGBA" if has_alpha and fmt != "JPEG" else "RGB")
    out = io.BytesIO()
    options: dict = {"exif": upright.getexif().tobytes()}
    if icc := image.info.get("icc_profile"):
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95)
    upright.save(out, format=fmt, **options)
    return upright, out.getvalue()


# --- Rules about the set of photos ---------------------------------------------------


def check_not_duplicate(name: str, sha256: str, known: dict[str, str]) -> None:
    """`known` maps the sha256 of each photo on the product (and earlier in this upload)
    to its name."""
    if sha256 in known:
        raise Rejected(name, Rule.DUPLICATE,
                       f"is the same photo as {known[sha256]}, which is already on this "
                       "product; it was skipped.")


def check_time_left(name: str, deadline: float) -> None:
    """`deadline` is a time.monotonic() value: the upload's time is up after it."""
    if time.monotonic() > deadline:
        raise Rejected(name, Rule.TIME_LIMIT,
                       f"was not checked: this upload reached its time limit of "
                       f"{settings.UPLOAD_TIME_LIMIT_SECONDS} s. Upload it again; photos "
                       "already added are skipped at once.")


def check_room(name: str, photo_count: int) -> None:
    limit = settings.PHOTOS_PER_PRODUCT_MAX
    if photo_count >= limit:
        raise Rejected(name, Rule.PHOTO_LIMIT,
                       f"was not added: a product holds at most {limit} photos and this one "
                       "is full. Delete some photos first.")


# --- Zip archives --------------------------------------------------------------------


def unsafe_entry_path(filename: str) -> bool:
    """True for names that would land outside a folder the archive was unpacked in."""
    path = filename.replace("\\", "/")
    parts = PurePosixPath(path).parts
    return (path.startswith("/") or ".." in parts
            or (len(path) > 1 and path[1] == ":"))  # a Windows drive: C:evil.jpg


def is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def is_junk(filename: str) -> bool:
    base = PurePosixPath(filename).name
    return filename.startswith(ARCHIVE_JUNK) or base in ARCHIVE_JUNK or base.startswith("._")


def open_archive(name: str, fileobj, size: int) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """Check a zip's directory before reading any of its contents.

    Problems with the archive as a whole (unreadable, too big, too many entries, paths
    outside it, links, passwords) refuse the whole archive, and nothing from it is stored.
    """
    if size > settings.ZIP_MAX_BYTES:
        raise Rejected(name, Rule.ZIP_SIZE,
                       f"is {megabytes(size)}; a .zip may be at most "
                       f"{megabytes(settings.ZIP_MAX_BYTES)}. Upload the photos in parts.")
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise Rejected(name, Rule.ZIP_INVALID,
                       "is not a readable .zip archive. Zip the photos again.") from None
    try:
        entries = [i for i in archive.infolist() if not i.is_dir() and not is_junk(i.filename)]
        if len(entries) > settings.ZIP_MAX_ENTRIES:
            raise Rejected(name, Rule.ZIP_ENTRIES,
                           f"holds {len(entries)} files; a .zip may hold at most "
                           f"{settings.ZIP_MAX_ENTRIES}. Upload the photos in parts.")
        total = sum(i.file_size for i in entries)
        if total > settings.ZIP_MAX_UNCOMPRESSED_BYTES:
            raise Rejected(name, Rule.ZIP_UNCOMPRESSED,
                           f"unpacks to {megabytes(total)}; a .zip may unpack to at most "
                           f"{megabytes(settings.ZIP_MAX_UNCOMPRESSED_BYTES)}. "
                           "Upload the photos in parts.")
        for info in entries:
            if unsafe_entry_path(info.filename):
                raise Rejected(name, Rule.ZIP_PATH,
                               f"holds “{info.filename}”, a path that points outside the "
                               "archive; the whole archive was refused. Zip the photos "
                               "again from their own folder.")
            if is_link(info):
                raise Rejected(name, Rule.ZIP_LINK,
                               f"holds “{info.filename}”, a link rather than a file; the "
                               "whole archive was refused. Zip the photos themselves.")
            if info.flag_bits & 0x1:
                raise Rejected(name, Rule.ZIP_ENCRYPTED,
                               "is password-protected; zip the photos without a password.")
    except BaseException:
        archive.close()
        raise
    return archive, entries


def iter_archive(name: str, fileobj, size: int,
                 deadline: float = math.inf) -> Iterator[tuple[str, bytes] | Rejected]:
    """Yield (display name, bytes) for each file in a zip, or a Rejected for an entry that
    cannot be a photo or was not reached before `deadline` (time.monotonic()). Raise
    Rejected when the archive as a whole is refused."""
    archive, entries = open_archive(name, fileobj, size)
    with archive:
        for info in entries:
            entry_name = f"{name} › {info.filename}"
            if is_archive(info.filename, b""):
                yield nested_archive(entry_name)
                continue
            try:
                check_time_left(entry_name, deadline)  # before unpacking it
                # The directory's sizes can lie: read one byte past the limit to notice.
                check_size(entry_name, info.file_size)
                with archive.open(info) as member:
                    data = member.read(settings.PHOTO_MAX_BYTES + 1)
                check_size(entry_name, len(data))
            except Rejected as rejected:
                yield rejected
                continue
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError):
                yield Rejected(entry_name, Rule.CORRUPT,
                               "could not be unpacked: the archive is damaged or uses a "
                               "compression method we cannot read. Zip the photos again.")
                continue
            if data.startswith(ARCHIVE_MAGIC):
                yield nested_archive(entry_name)
                continue
            yield entry_name, data


def nested_archive(name: str) -> Rejected:
    return Rejected(name, Rule.NESTED_ARCHIVE,
                    "is an archive inside the archive; put the photos themselves in the .zip.")
