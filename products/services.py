"""Products and their photos: storing uploads, deleting photos and products.

Uploads are judged file by file: one bad photo is refused with its reason and the others
are still added, because a shop owner dropping 80 photos should not redo 79 good ones.
A .zip is expanded and each photo in it judged the same way; only problems with the
archive itself (unreadable, too large, paths outside it) refuse the whole archive.

What is accepted is stored in one transaction. Files are written before their rows, and if
anything unexpected fails (a full disk, a database error) every file written by this call
is removed again and the rows roll back: no partial batch and no orphan files. Deleting a
row removes its files only once the deletion has committed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Max
from PIL import Image

from . import validation
from .models import Photo, Product
from .signals import deletion_requested
from .validation import CheckedImage, Rejected

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = (360, 360)


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


def candidates(uploads: Iterable[UploadedFile]) -> Iterator[tuple[str, bytes] | Rejected]:
    """(name, bytes) for each photo in the uploads, zips expanded; Rejected for the rest.

    Sizes are checked before anything is read into memory.
    """
    for upload in uploads:
        name = PurePosixPath((upload.name or "unnamed").replace("\\", "/")).name[:200]
        upload.seek(0)
        head = upload.read(8)
        upload.seek(0)
        if validation.is_zip(name, head):
            try:
                yield from validation.iter_archive(name, upload, upload.size or 0)
            except Rejected as rejected:
                yield rejected
            continue
        try:
            validation.check_size(name, upload.size or 0)
        except Rejected as rejected:
            yield rejected
            continue
        yield name, upload.read()


def add_photos(product: Product, uploads: Iterable[UploadedFile]) -> list[FileResult]:
    """Validate and store uploads on `product`; one FileResult per file, in order."""
    storage = photo_storage()
    written: list[str] = []
    results: list[FileResult] = []
    try:
        with transaction.atomic():
            # Lock the product so two uploads at once cannot pass the photo limit together.
            product = Product.objects.select_for_update().get(pk=product.pk)
            known = dict(product.photos.values_list("sha256", "original_name"))
            position = (product.photos.aggregate(m=Max("position"))["m"] or 0) + 1
            for item in candidates(uploads):
                if isinstance(item, Rejected):
                    results.append(refused(item))
                    continue
                name, data = item
                try:
                    validation.check_room(name, len(known))
                    checked = validation.check_image(name, data)
                except Rejected as rejected:
                    results.append(refused(rejected))
                    continue
                del data
                try:
                    validation.check_not_duplicate(name, checked.sha256, known)
                    photo = store(product, checked, position, storage, written)
                except Rejected as rejected:
                    results.append(refused(rejected))
                    continue
                finally:
                    checked.image.close()
                known[checked.sha256] = name
                position += 1
                results.append(FileResult(name=name, accepted=True, message=f"{name}: added.",
                                          photo=photo))
            if results and any(r.accepted for r in results):
                product.save(update_fields=["updated_at"])
    except BaseException:
        for stored in written:
            storage.delete(stored)
        raise
    return results


def refused(rejected: Rejected) -> FileResult:
    return FileResult(name=rejected.name, accepted=False, message=rejected.message,
                      rule=rejected.rule)


def store(product: Product, checked: CheckedImage, position: int, storage,
          written: list[str]) -> Photo:
    photo = Photo(product=product, original_name=checked.name[:255],
                  width=checked.width, height=checked.height,
                  byte_size=len(checked.data), sha256=checked.sha256, position=position)
    # upload_to generates the stored name; the extension follows the real format.
    photo.image.save(f"photo{checked.extension}", ContentFile(checked.data), save=False)
    written.append(photo.image.name)
    photo.width, photo.height = checked.width, checked.height  # the save above clears them
    written.append(storage.save(thumbnail_name(photo.image.name),
                                ContentFile(make_thumbnail(checked.image))))
    photo.save()
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


def remove_files(names: list[str]) -> None:
    storage = photo_storage()
    for name in names:
        try:
            storage.delete(name)
        except OSError:  # the row is gone either way; log the leftover for an operator
            log.warning("could not delete upload %s", name)
