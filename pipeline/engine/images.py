"""The photos of a job: reading, checking and normalizing them, and images.zip.

Normalized photos have their EXIF orientation applied (so every later stage sees them
upright without reading EXIF), keep their other EXIF fields (the camera make, model and
focal length help COLMAP), and get safe, unique file names.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import InputError

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
_EXIF_ORIENTATION = 0x0112
_EXIF_MAKE, _EXIF_MODEL = 0x010F, 0x0110
# Flattening transparent photos onto grey keeps their edges from looking like features.
_FLATTEN_GREY = (128, 128, 128)
# Far beyond any phone: a guard against decompression bombs, not a quality limit.
_MAX_PIXELS = 120_000_000


@dataclass(frozen=True)
class Photo:
    """One normalized photo (upright) as written to the photos folder."""

    name: str
    width: int
    height: int
    device: str  # "make model" from EXIF, "" when unknown
    has_alpha: bool

    @property
    def camera_key(self) -> tuple[str, int, int]:
        """Photos with equal keys were taken with the same camera and lens settings."""
        return (self.device, self.width, self.height)


@dataclass(frozen=True)
class PhotoSet:
    photos: list[Photo]
    ignored: list[str]  # files that are not photos
    duplicates: list[str]  # exact copies of a photo read before them


Warn = Callable[[str], None]


def normalize_photos(source: Path, out_dir: Path, *, warn: Warn = log.warning) -> PhotoSet:
    """Reads the photos in `source` (a folder or a .zip), writes them upright to out_dir.

    Files that are not JPEG or PNG are skipped with a warning, and so are exact copies of
    a photo already read. Raises InputError when a photo is damaged or none is left.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    out_dir.mkdir(parents=True, exist_ok=True)
    photos: list[Photo] = []
    seen: dict[str, str] = {}
    skipped: list[str] = []
    duplicates: list[str] = []
    for original, opener in _members(source):
        suffix = Path(original).suffix.lower()
        if suffix not in PHOTO_SUFFIXES:
            skipped.append(original)
            warn(f"Ignored {original}: not a JPEG or PNG photo.")
            continue
        with opener() as fh:
            data = fh.read()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            duplicates.append(original)
            warn(f"Ignored {original}: the same file as {seen[digest]}.")
            continue
        seen[digest] = original
        name = _unique_name(original, {p.name for p in photos}, PHOTO_SUFFIXES[suffix])
        photos.append(_normalize_one(original, data, out_dir / name))

    if not photos:
        if skipped:
            raise InputError(f"None of the {len(skipped)} uploaded files is a photo "
                             "(JPEG or PNG); upload the product photos themselves.")
        raise InputError("No photos were found; upload 20 or more photos of the product, "
                         "taken all around it.")
    return PhotoSet(photos, skipped, duplicates)


def _normalize_one(original: str, data: bytes, dest: Path) -> Photo:
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    damaged = (f"Photo {original} is damaged or incomplete; upload it again or leave it "
               "out.")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.load()  # decodes every byte: a truncated file fails here, not later
            exif = img.getexif()
            orientation = exif.get(_EXIF_ORIENTATION, 1)
            device = " ".join(str(exif.get(t, "")).strip("\x00 ") for t in
                              (_EXIF_MAKE, _EXIF_MODEL)).strip()
            upright = ImageOps.exif_transpose(img) if orientation != 1 else img
            if upright.mode not in ("RGB", "RGBA", "L"):
                upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
            expected = PHOTO_SUFFIXES[dest.suffix.lower()]
            if fmt == expected and upright is img:
                dest.write_bytes(data)  # already upright: keep the original bytes
            else:
                _save(upright, dest, exif=upright.getexif())
            return Photo(dest.name, upright.width, upright.height, device,
                         "A" in upright.getbands())
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        log.debug("cannot read %s: %r", original, exc)
        raise InputError(damaged) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(f"Photo {original} is too large ({exc}); upload photos of at "
                         "most 100 megapixels.") from exc


def resize_photo(src: Path, dest: Path, max_size: int | None, *, flatten: bool
                 ) -> tuple[int, int]:
    """Writes src with its long side at most max_size (None: as it is); flatten drops alpha
    onto grey.

    Returns the new (width, height). EXIF is kept so COLMAP can read the focal length.
    """
    from PIL import Image

    with Image.open(src) as img:
        scale = 1.0 if max_size is None else min(1.0, max_size / max(img.size))
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        if scale == 1.0 and not (flatten and "A" in img.getbands()):
            shutil.copyfile(src, dest)
            return img.size
        out = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        if scale < 1.0:
            out = out.resize(size, Image.Resampling.LANCZOS)
        if flatten and out.mode == "RGBA":
            background = Image.new("RGB", out.size, _FLATTEN_GREY)
            background.paste(out, mask=out.getchannel("A"))
            out = background
        _save(out, dest, exif=img.getexif())
        return out.size


def pack_zip(photos_dir: Path, names: list[str], zip_path: Path) -> None:
    """images.zip of the normalized photos; stored, since JPEG and PNG are compressed."""
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            zf.write(photos_dir / name, arcname=name)
    tmp.replace(zip_path)


def _save(img, dest: Path, *, exif) -> None:  # noqa: ANN001 - PIL types stay lazy
    if PHOTO_SUFFIXES[dest.suffix.lower()] == "JPEG":
        if img.mode == "RGBA":
            img = img.convert("RGB")
        img.save(dest, "JPEG", quality=95, exif=exif)
    else:
        img.save(dest, "PNG", exif=exif)


def _members(source: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """(name, opener) for each file in a folder or a zip, sorted by name, hidden ones left."""
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                yield path.name, _file_opener(path)
    elif source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                name = Path(info.filename).name
                if info.is_dir() or name.startswith(".") or "__MACOSX" in info.filename:
                    continue
                yield info.filename, _zip_opener(zf, info)
    elif source.exists():
        raise InputError(f"{source.name} is neither a folder of photos nor a zip of them.")
    else:
        raise InputError(f"No photos found: {source} does not exist.")


def _file_opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    @contextmanager
    def opener() -> Iterator[IO[bytes]]:
        try:
            with zf.open(info) as fh:
                yield fh
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"Photo {info.filename} is damaged inside the zip; upload "
                             "it again.") from exc

    return opener  # type: ignore[return-value]


def _unique_name(original: str, taken: set[str], fmt: str) -> str:
    """A safe file name: the original's stem in [A-Za-z0-9._-], its format's suffix."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(original).stem).strip("._") or "photo"
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    name, n = f"{stem[:80]}{suffix}", 1
    while name in taken:
        n += 1
        name = f"{stem[:80]}_{n}{suffix}"
    return name
