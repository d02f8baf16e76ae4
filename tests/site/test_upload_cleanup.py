"""Upload files that no photo row points at (an upload killed between writing its files
and saving their rows) are deleted by the hourly schedule once they are old enough; the
files of photos, and recent files an upload may still be saving, are left alone."""

from __future__ import annotations

import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from products import services
from products.models import Photo, Product
from tests.site.test_validation import jpeg, uploads_dir

__all__ = ["uploads_dir"]
pytestmark = pytest.mark.django_db


def age(path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_old_files_without_a_row_are_deleted_and_the_rest_kept(django_user_model,
                                                               uploads_dir, settings):
    settings.UPLOAD_ORPHAN_HOURS = 24
    owner = django_user_model.objects.create_user("shop")
    product = Product.objects.create(owner=owner, name="Vase", sku="V-1")
    [result] = services.add_photos(product, [SimpleUploadedFile("a.jpg", jpeg(1))])
    photo = result.photo
    storage = services.photo_storage()
    # What a restart during an upload leaves: a photo and its thumbnail, no row; and a
    # folder of a product that is gone.
    orphans = [storage.save(f"products/{product.pk}/{n}", ContentFile(b"x"))
               for n in ("dead.jpg", "dead.thumb.jpg")]
    orphans.append(storage.save("products/999999/gone.png", ContentFile(b"x")))
    recent = storage.save(f"products/{product.pk}/saving.jpg", ContentFile(b"x"))
    for name in [*orphans, photo.image.name, services.thumbnail_name(photo.image.name)]:
        age(uploads_dir / name, hours=48)  # the photo's own files are old too

    assert sorted(services.orphan_uploads_delete()) == sorted(orphans)
    for name in orphans:
        assert not storage.exists(name)
    assert storage.exists(photo.image.name)
    assert storage.exists(services.thumbnail_name(photo.image.name))
    assert storage.exists(recent)  # younger than UPLOAD_ORPHAN_HOURS
    assert Photo.objects.count() == 1
    assert services.orphan_uploads_delete() == []


def test_nothing_uploaded_yet_is_nothing_to_do(uploads_dir):
    assert services.orphan_uploads_delete() == []


def test_the_cleanup_is_a_schedule():
    from django_q.models import Schedule

    from pipeline.jobs.schedules import ensure_schedules

    ensure_schedules()
    assert Schedule.objects.filter(func="products.services.orphan_uploads_delete",
                                   minutes=60).exists()
