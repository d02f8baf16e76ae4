"""Products and their photos: storing uploads, deleting photos and products.

Uploads are judged file by file: one bad photo is refused with its reason and the others
are still added, because a shop owner dropping 80 photos should not redo 79 good ones.
A .zip is expanded and each photo in it judged the same way; only problems with the
archive itself (unreadable, too large, paths outside it) refuse the whole archive.

What is accepted is stored in one short transaction at the end; the checks and the files
come before it, outside any transaction. Files are written before their rows, and if
anything unexpected fails (a full disk, a database error) every file written by this call
is removed again and the rows roll back: no partial batch. A process killed in between
leaves files without rows; a schedule deletes those (`orphan_uploads_delete`).
Deleting a row removes its files only once the deletion has committed.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from PIL import Image

from . import validation
from .models import Photo, Product
from .signals import deletion_requested
from .validation import CheckedImage, Rejected

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = (360, 360)
UPLOAD_ROOT = "products"  # Photo's upload_to: products/{product id}/{random}.{ext}


class ProductError(Exception):
    """A request about a product that cannot be done as asked; safe to show the user."""


@dataclass
class FileResult:
    """What happened to one uploaded file (or one photo inside a .zip)."""

    name: str
    accepted: bool
    message: str
    rule: str | None = None
    photo: Photo | None = None


def photo_storage():
    """Where photos and their thumbnails live (the Photo.image field's storage)."""
    return Photo._meta.get_field("image").storage


def photo_limit() -> int:
    return settings.PHOTOS_PER_PRODUCT_MAX


def thumbnail_name(image_name: str) -> str:
    path = PurePosixPath(image_name)
    return str(path.with_name(f"{path.stem}.thumb.jpg"))


def make_thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.thumbnail(THUMBNAIL_SIZE)
    if thumb.mode != "RGB":
        thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=82)
    return out.getvalue()


# --- Adding photos -------------------------------------------------------------------


def candidates(uploads: Iterable[UploadedFile],
               deadline: float = math.inf) -> Iterator[tuple[str, bytes] | Rejected]:
    """(name, bytes) for each photo in the uploads, zips expanded; Rejected for the rest,
    and for what is not reached before `deadline` (time.monotonic()).

    Sizes and the time left are checked before anything is read into memory.
    """
    for upload in uploads:
        name = PurePosixPath((upload.name or "unnamed").replace("\\", "/")).name[:200]
        upload.seek(0)
        head = upload.read(8)
        upload.seek(0)
        if validation.is_zip(name, head):
            try:
                yield from validation.iter_archive(name, upload, upload.size or 0, deadline)
            except Rejected as rejected:
                yield rejected
            continue
        try:
            validation.check_time_left(name, deadline)
            validation.check_size(name, upload.size or 0)
        except Rejected as rejected:
            yield rejected
            continue
        yield name, upload.read()


def add_photos(product: Product, uploads: Iterable[UploadedFile]) -> list[FileResult]:
    """Validate and store uploads on `product`; one FileResult per file, in order.

    The slow part (reading zips, decoding, thumbnails, writing files) runs outside any
    transaction: on SQLite a transaction holds the one write lock of the whole database,
    and an upload of large photos would stall every other user's writes (sign-ins,
    API calls, the worker) until it ends. Rows are written at the end, in one short
    transaction that checks the photo limit and duplicates again under the product's
    lock, since another upload may have added photos meanwhile.

    A duplicate is recognised by the hash of its bytes before it is decoded. Work stops
    at UPLOAD_TIME_LIMIT_SECONDS (inside the web server's request limit): the files not
    reached by then are refused with rule `time_limit`, and sending them again costs
    nothing for the ones already added (duplicates).
    """
    storage = photo_storage()
    deadline = time.monotonic() + settings.UPLOAD_TIME_LIMIT_SECONDS
    written: list[str] = []
    results: list[FileResult] = []
    pending: list[int] = []  # results validated and written, their rows not yet saved
    known = dict(product.photos.values_list("sha256", "original_name"))
    try:
        for item in candidates(uploads, deadline):
            if isinstance(item, Rejected):
                results.append(refused(item))
                continue
            name, data = item
            try:
                validation.check_not_duplicate(name, validation.digest(data), known)
                validation.check_room(name, len(known))
                validation.check_time_left(name, deadline)
                checked = validation.check_image(name, data)
            except Rejected as rejected:
                results.append(refused(rejected))
                continue
            del data
            try:
                photo = store_files(product, checked, storage, written)
            finally:
                checked.image.close()
            known[checked.sha256] = name
            pending.append(len(results))
            results.append(FileResult(name=name, accepted=True, message=f"{name}: added.",
                                      photo=photo))
        if pending:
            save_rows(product, pending, results)
    except BaseException:
        remove_files(written)
        raise
    return results


def save_rows(product: Product, pending: list[int], results: list[FileResult]) -> None:
    """The rows of the photos whose files are written (`results[i]` for i in `pending`),
    in one short transaction. A photo that another upload added meanwhile, or that no
    longer fits under the limit, is refused now (its result replaced) and its files
    removed after commit."""
    late: list[str] = []
    with transaction.atomic():
        # Lock the product so two uploads at once cannot pass the photo limit together.
        locked = Product.objects.select_for_update().filter(pk=product.pk).first()
        if locked is None:  # the caller removes the files written
            raise ProductError(f"{product.name} was deleted while its photos were being "
                               "uploaded; nothing was added.")
        known = dict(locked.photos.values_list("sha256", "original_name"))
        position = (locked.photos.aggregate(m=Max("position"))["m"] or 0) + 1
        for index in pending:
            result = results[index]
            photo = result.photo
            try:
                validation.check_not_duplicate(result.name, photo.sha256, known)
                validation.check_room(result.name, len(known))
            except Rejected as rejected:
                late += [photo.image.name, thumbnail_name(photo.image.name)]
                results[index] = refused(rejected)
                continue
            photo.position = position
            photo.save()
            known[photo.sha256] = result.name
            position += 1
        if len(late) < 2 * len(pending):
            locked.save(update_fields=["updated_at"])
        transaction.on_commit(lambda: remove_files(late))


def refused(rejected: Rejected) -> FileResult:
    return FileResult(name=rejected.name, accepted=False, message=rejected.message,
                      rule=rejected.rule)


def store_files(product: Product, checked: CheckedImage, storage,
                written: list[str]) -> Photo:
    """Write the photo and its thumbnail; the unsaved row that will point at them."""
    photo = Photo(product=product, original_name=checked.name[:255],
                  width=checked.width, height=checked.height,
                  byte_size=len(checked.data), sha256=checked.sha256)
    # upload_to generates the stored name; the extension follows the real format.
    photo.image.save(f"photo{checked.extension}", ContentFile(checked.data), save=False)
    written.append(photo.image.name)
    photo.width, photo.height = checked.width, checked.height  # the save above clears them
    written.append(storage.save(thumbnail_name(photo.image.name),
                                ContentFile(make_thumbnail(checked.image))))
    return photo


# --- Deleting ------------------------------------------------------------------------


def delete_photo(photo: Photo) -> None:
    """Delete one photo and its files; refused (ProductError from a deletion_requested
    receiver) while a job may be reading the photos."""
    with transaction.atomic():
        deletion_requested.send(sender=Photo, product=photo.product, instance=photo)
        names = [photo.image.name, thumbnail_name(photo.image.name)]
        photo.delete()
        transaction.on_commit(lambda: remove_files(names))


def delete_product(product: Product) -> None:
    """Delete a product with its photos and their files. Apps that hang rows on products
    refuse through deletion_requested and clean their own files up on delete."""
    with transaction.atomic():
        deletion_requested.send(sender=Product, product=product, instance=product)
        names = []
        for image in product.photos.values_list("image", flat=True):
            names += [image, thumbnail_name(image)]
        product.delete()
        transaction.on_commit(lambda: remove_files(names))


# --- Files without rows ------------------------------------------------------------------


def orphan_uploads_delete(older_than_hours: float | None = None) -> list[str]:
    """Delete photo files (and thumbnails) that no Photo row points at and that have not
    changed for UPLOAD_ORPHAN_HOURS: what an upload killed between writing its files and
    saving their rows (a restart, an out-of-memory kill) left behind, and what a deletion
    whose on-commit removal failed left. The wait keeps it off the files of an upload
    still running (it writes its rows within UPLOAD_TIME_LIMIT_SECONDS). Run by a
    django-q2 schedule (pipeline/schedules.py); returns the names deleted."""
    hours = settings.UPLOAD_ORPHAN_HOURS if older_than_hours is None else older_than_hours
    cutoff = timezone.now() - timedelta(hours=hours)
    storage = photo_storage()
    deleted: list[str] = []
    try:
        folders, _ = storage.listdir(UPLOAD_ROOT)
    except FileNotFoundError:  # nothing uploaded yet
        return deleted
    for folder in folders:
        prefix = f"{UPLOAD_ROOT}/{folder}"
        _, files = storage.listdir(prefix)
        if not files:
            continue
        kept: set[str] = set()
        for image in Photo.objects.filter(image__startswith=f"{prefix}/").values_list(
                "image", flat=True):
            kept |= {image, thumbnail_name(image)}
        for name in sorted({f"{prefix}/{name}" for name in files} - kept):
            try:
                if storage.get_modified_time(name) >= cutoff:
                    continue  # perhaps an upload still running
                storage.delete(name)
            except (OSError, NotImplementedError) as exc:
                log.warning("could not delete orphan upload %s: %s", name, exc)
                continue
            deleted.append(name)
    if deleted:
        log.info("deleted %d upload files without a photo row", len(deleted))
    return deleted


def remove_files(names: list[str]) -> None:
    storage = photo_storage()
    for name in names:
        try:
            storage.delete(name)
        except OSError:  # the row is gone either way; log the leftover for an operator
            log.warning("could not delete upload %s", name)
