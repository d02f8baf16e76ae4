"""Each trained photo's mask on the product page and in the API: kept privately by the
worker beside the comparison, flagged masks first with what to do, the overlays for the
job's owner only. The masks' review itself is the engine's (pipeline.engine.mask_review)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from pipeline.backends.local import LocalBackend
from pipeline.delivery.storage import job_compare_dir
from pipeline.engine.mask_review import flag, overlay
from pipeline.jobs.tasks import JobRunner
from pipeline.models import Job
from tests.site.display.test_job_page import finished_frames
from tests.site.jobs_fixtures import add_photo, noise_png, storage
from tests.site.quality.test_comparison import (  # noqa: F401 (fixtures)
    api_client,
    product,
    write_engine_comparison,
)

__all__ = ["storage"]
pytestmark = pytest.mark.django_db

# Share of the photo each mask covers: the second lost most of the product.
COVERAGES = (0.30, 0.05, 0.32)


def write_engine_masks(compare: Path, names: list[str]) -> None:
    """masks.json and the overlays, as pipeline.engine.mask_review leaves them."""
    entries = []
    for n, (name, share) in enumerate(zip(names, COVERAGES, strict=True), start=1):
        mask = np.zeros((48, 64), np.uint8)
        mask[: round(48 * share / 0.5), 16:48] = 255
        photo = Image.fromarray(np.full((48, 64, 3), 180, np.uint8))
        overlay(photo, Image.fromarray(mask)).save(compare / f"mask_{n}.jpg")
        entries.append({"photo": name, "file": f"mask_{n}.jpg",
                        "coverage": float((mask > 127).mean()), "edge": 0.0})
    (compare / "masks.json").write_text(json.dumps({"masks": flag(entries)}))


@pytest.fixture
def masked_job(product) -> Job:  # noqa: F811
    photos = [add_photo(product, noise_png(i, (64, 48)), f"IMG_{i:04d}.jpg", i)
              for i in range(3)]
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job)
    backend = LocalBackend()
    compare = backend.workspace(str(job.pk)) / "frames" / "compare"
    packed = [f"{i:04d}_{p.sha256[:8]}.png" for i, p in enumerate(photos)]
    write_engine_comparison(compare, packed)
    write_engine_masks(compare, packed)
    job.comparison = JobRunner(job, backend)._keep_comparison()
    job.save(update_fields=["comparison"])
    return job


def test_the_worker_keeps_the_masks_privately(masked_job, settings):
    masks = masked_job.comparison["masks"]
    assert [m["flag"] for m in masks] == [None, "too_little", None]
    assert masks[1]["advice"].startswith("The mask covers much less")
    private = job_compare_dir(masked_job)
    assert {"masks.json", "mask_1.jpg", "mask_2.jpg", "mask_3.jpg"} <= {
        p.name for p in private.iterdir()}
    public = Path(settings.FRAME_STORAGE_PATH)
    assert not [p for p in public.rglob("mask_*")]


def test_product_page_shows_each_mask_flagged_first(client, owner, masked_job,  # noqa: F811
                                                    django_user_model):
    client.force_login(owner)
    html = client.get(f"/products/{masked_job.product_id}/").content.decode()
    assert "What the spin kept of each photo" in html
    assert html.count("data-mask ") + html.count("data-mask>") == 3
    first = html.index('data-mask-flag="too_little"')
    assert first < html.index("IMG_0000.jpg · ")  # the flagged photo comes first
    assert "IMG_0001.jpg · 5%" in html
    assert "part of the product may be missing" in html
    url = f"/jobs/{masked_job.pk}/compare/2/mask/"
    assert f'src="{url}"' in html
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]

    client.force_login(django_user_model.objects.create_user("rival", password="pw-r-12345"))
    assert client.get(url).status_code == 404
    assert Client().get(url).status_code == 302  # to the sign-in page


def test_api_lists_the_masks_with_their_overlays(owner, masked_job,  # noqa: F811
                                                 django_user_model):
    api = api_client(owner)
    masks = api.get(f"/api/jobs/{masked_job.pk}").json()["comparison"]["masks"]
    assert [(m["photo"], m["flag"]) for m in masks] == [
        ("IMG_0000.jpg", None), ("IMG_0001.jpg", "too_little"), ("IMG_0002.jpg", None)]
    url = masks[1]["overlay_url"]
    assert url == f"http://testserver/api/jobs/{masked_job.pk}/masks/2"
    response = api.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
        assert image.size == (64, 48)
    rival = api_client(django_user_model.objects.create_user("rival"))
    assert rival.get(url).status_code == 404
    assert Client().get(url).status_code == 401
    assert api.get(f"/api/jobs/{masked_job.pk}/masks/4").status_code == 404
