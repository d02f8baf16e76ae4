"""manage.py spin and manage.py jobs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import delete_photo_files, storage

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["storage"]


def test_spin_images_imports_the_photos_runs_the_job_and_reports_the_engines_reason(
        tmp_path, storage, django_user_model, monkeypatch, settings):
    """Noise photos pass upload validation but no pose can be found: the command runs the
    real colmap stage in the foreground and ends with the engine's message."""
    monkeypatch.setenv("NERF_DEVICE", "cpu")
    django_user_model.objects.create_superuser("admin", password="pw-admin-123")
    folder = tmp_path / "noise"
    folder.mkdir()
    for i in range(settings.JOB_MIN_PHOTOS):
        pixels = np.random.default_rng(i).integers(0, 256, (640, 856, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        (folder / f"n{i}.jpg").write_bytes(out.getvalue())
    (folder / "notes.txt").write_text("not a photo")

    stdout = io.StringIO()
    try:
        with pytest.raises(CommandError, match=r"failed: Only 0 of 8 photos could be placed"):
            call_command("spin", "--images", str(folder), "--preset", "test", stdout=stdout)
        product = Product.objects.get()
        assert product.name == "noise" and product.photos.count() == 8
        assert f"Product {product.pk} 'noise': 8 photos added, 0 refused." in stdout.getvalue()
        job = Job.objects.get()
        assert (job.status, job.stage, job.colmap_started_at is not None) == (
            "failed", "colmap", True)

        listing = io.StringIO()
        call_command("jobs", "--status", "failed", stdout=listing)
        assert str(job.pk)[:8] in listing.getvalue() and "Only 0 of 8" in listing.getvalue()
    finally:
        for product in Product.objects.all():
            delete_photo_files(product)


def test_spin_images_with_no_usable_photo_leaves_nothing(tmp_path, storage,
                                                        django_user_model):
    owner = django_user_model.objects.create_user("shop")
    (tmp_path / "small.png").write_bytes(_png((100, 80)))
    with pytest.raises(CommandError, match="None of the 1 files"):
        call_command("spin", "--images", str(tmp_path), "--owner", owner.username,
                     stderr=io.StringIO())
    assert not Product.objects.exists() and not Job.objects.exists()


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, "PNG")
    return out.getvalue()


def test_spin_refuses_bad_requests_clearly(storage):
    with pytest.raises(CommandError, match="There is no product 999"):
        call_command("spin", "--product", "999")
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("spin", "--images", "/nonexistent/photos")
    with pytest.raises(CommandError, match="frame count must be between 1 and 10000"):
        call_command("spin", "--product", "1", "--frames", "0")


def test_jobs_with_no_jobs():
    out = io.StringIO()
    call_command("jobs", stdout=out)
    assert out.getvalue().strip() == "No jobs."
