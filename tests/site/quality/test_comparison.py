"""The photo-versus-render comparison on the site: kept privately by the worker, shown on
the job page and in `GET /api/jobs/{id}`, its images for the job's owner only. The
comparison itself is the engine's (pipeline.engine.compare); the worker's whole job in
tests/site/jobs/test_jobs_worker.py makes a real one."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from accounts.tokens import create_token
from pipeline.backends.local import LocalBackend
from pipeline.delivery.storage import job_compare_dir
from pipeline.engine.compare import summary
from pipeline.jobs.tasks import JobRunner
from pipeline.models import Job
from pipeline.quality.comparison import image_path, keep_comparison
from products.models import Product
from tests.site.display.test_job_page import finished_frames
from tests.site.jobs_fixtures import (
    add_photo,
    delete_photo_files,
    frames_dir,
    noise_png,
    storage,
)

__all__ = ["storage"]
pytestmark = pytest.mark.django_db

SCORES = [(27.5, 0.93, 0.95), (22.0, 0.81, 0.9), (19.5, 0.7, 0.86)]  # a "fair" spin


@pytest.fixture
def product(owner, storage):
    product = Product.objects.create(owner=owner, name="Teapot", sku="TEA-1")
    yield product
    delete_photo_files(product)


def write_engine_comparison(compare: Path, names: list[str]) -> dict:
    """WS/frames/compare/ as the render stage leaves it."""
    compare.mkdir(parents=True)
    views = []
    for n, (name, (psnr, ssim, iou)) in enumerate(zip(names, SCORES, strict=True), start=1):
        Image.new("RGB", (40, 30), (250, 250, 250)).save(compare / f"photo_{n}.jpg")
        render = np.zeros((30, 40, 4), np.uint8)
        render[5:25, 10:30] = (200, 60, 40, 255)
        Image.fromarray(render).save(compare / f"render_{n}.png")
        views.append({"photo": name, "photo_file": f"photo_{n}.jpg",
                      "render_file": f"render_{n}.png", "azimuth_deg": 120.0 * n,
                      "width": 40, "height": 30, "psnr": psnr, "ssim": ssim,
                      "alpha_iou": iou})
    doc = summary(views)
    (compare / "compare.json").write_text(json.dumps(doc))
    return doc


@pytest.fixture
def compared_job(product) -> Job:
    """A finished job whose comparison the worker kept, as its finalize does."""
    photos = [add_photo(product, noise_png(i, (64, 48)), f"IMG_{i:04d}.jpg", i)
              for i in range(3)]
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job)
    backend = LocalBackend()
    # Names as the worker packs the photos into images.zip.
    write_engine_comparison(backend.workspace(str(job.pk)) / "frames" / "compare",
                            [f"{i:04d}_{p.sha256[:8]}.png" for i, p in enumerate(photos)])
    runner = JobRunner(job, backend)
    job.comparison = runner._keep_comparison()
    job.save(update_fields=["comparison"])
    return job


def api_client(user) -> Client:
    _, token = create_token(user, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def test_worker_keeps_the_comparison_privately(compared_job, settings):
    doc = compared_job.comparison
    assert doc["verdict"] == "fair" and doc["verdict_text"].startswith("Fair:")
    assert doc["mean"] == {"psnr": 23.0, "ssim": 0.813, "alpha_iou": 0.903}
    assert len(doc["views"]) == 3 and set(doc["thresholds"]) == {"faithful", "fair"}
    private = job_compare_dir(compared_job)
    assert sorted(p.name for p in private.iterdir()) == [
        "compare.json", "photo_1.jpg", "photo_2.jpg", "photo_3.jpg", "render_1.png",
        "render_2.png", "render_3.png"]
    # Nothing of it where the public frames are served from.
    public = Path(settings.FRAME_STORAGE_PATH)
    assert not private.resolve().is_relative_to(public.resolve())
    assert not [p for p in public.rglob("*") if p.name.startswith(("photo_", "compare"))]
    assert image_path(compared_job, 2, "photo") == private / "photo_2.jpg"
    assert image_path(compared_job, 4, "photo") is None
    assert image_path(compared_job, 1, "frames") is None


def test_job_page_shows_each_photo_beside_its_render_and_the_verdict(client, owner,
                                                                     compared_job):
    client.force_login(owner)
    html = client.get(compared_job.get_absolute_url()).content.decode()
    assert "How faithful is the spin" in html
    assert "Fair: the shape is right but fine detail is soft" in html
    assert html.count("data-compared-view") == 3
    assert "IMG_0000.jpg" in html and "IMG_0002.jpg" in html  # the uploaded names
    assert "Colours</dt><dd>match closely (PSNR 27.5 dB)" in html
    assert "Detail</dt><dd>soft (SSIM 0.81)" in html
    assert "Outline</dt><dd>close (86% overlap)" in html
    for n in (1, 2, 3):
        for kind, mime in (("photo", "image/jpeg"), ("render", "image/png")):
            url = reverse("pipeline:compare_image", args=[compared_job.pk, n, kind])
            assert f'src="{url}"' in html
            response = client.get(url)
            assert response.status_code == 200 and response["Content-Type"] == mime
            assert "private" in response["Cache-Control"]
            assert "Access-Control-Allow-Origin" not in response


def test_comparison_images_are_the_owners_only(client, compared_job, django_user_model):
    url = reverse("pipeline:compare_image", args=[compared_job.pk, 1, "photo"])
    assert client.get(url).status_code == 302  # to the sign-in page
    client.force_login(django_user_model.objects.create_user("rival", password="pw-r-12345"))
    assert client.get(url).status_code == 404
    assert client.get(compared_job.get_absolute_url()).status_code == 404
    for bad in ((compared_job.pk, 9, "photo"), (compared_job.pk, 1, "compare"),
                (uuid.uuid4(), 1, "photo")):
        client.force_login(compared_job.product.owner)
        assert client.get(reverse("pipeline:compare_image", args=bad)).status_code == 404


def test_api_returns_the_comparison_and_its_images_with_its_auth(owner, compared_job,
                                                                 django_user_model):
    api = api_client(owner)
    body = api.get(f"/api/jobs/{compared_job.pk}").json()
    comparison = body["comparison"]
    assert comparison["verdict"] == "fair"
    assert comparison["verdict_text"].startswith("Fair:")
    assert comparison["alpha_iou"] == 0.903
    views = comparison["views"]
    assert [v["photo"] for v in views] == ["IMG_0000.jpg", "IMG_0001.jpg", "IMG_0002.jpg"]
    assert [(v["psnr"], v["ssim"], v["alpha_iou"]) for v in views] == SCORES
    photo_url = views[0]["photo_url"]
    assert photo_url == (f"http://testserver/api/jobs/{compared_job.pk}/compare/1/photo")
    assert views[0]["render_url"].endswith("/compare/1/render")

    response = api.get(photo_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
        assert image.size == (40, 30)
    render = api.get(views[0]["render_url"])
    with Image.open(io.BytesIO(b"".join(render.streaming_content))) as image:
        assert image.mode == "RGBA"

    rival = api_client(django_user_model.objects.create_user("rival"))
    for url in (photo_url, views[0]["render_url"], f"/api/jobs/{compared_job.pk}"):
        response = rival.get(url)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert Client().get(photo_url).status_code == 401
    assert api.get(f"/api/jobs/{compared_job.pk}/compare/4/photo").status_code == 404


def test_jobs_without_a_comparison_show_none(client, owner, product):
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job)
    client.force_login(owner)
    assert "How faithful" not in client.get(job.get_absolute_url()).content.decode()
    assert api_client(owner).get(f"/api/jobs/{job.pk}").json()["comparison"] is None
    assert frames_dir(job).is_dir()


def test_a_damaged_or_unsafe_comparison_is_not_kept(tmp_path):
    doc = write_engine_comparison(tmp_path / "c", ["a.png", "b.png", "c.png"])
    path = tmp_path / "c" / "compare.json"
    assert len(keep_comparison(path)["views"]) == 3

    doc["views"][0]["photo_file"] = "../../secret.jpg"
    doc["views"][1]["psnr"] = float("nan")
    (tmp_path / "c" / "render_3.png").unlink()
    path.write_text(json.dumps(doc))
    assert keep_comparison(path) == {}  # no view left whole

    doc["views"][2]["render_file"] = "render_2.png"
    doc["verdict"] = "splendid"
    path.write_text(json.dumps(doc))
    assert keep_comparison(path) == {}
    path.write_text("{half")
    assert keep_comparison(path) == {}
