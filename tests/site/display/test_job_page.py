"""The job page's live progress card, the viewer's spin.json, the public frame files and
the product page's camera plot, on the real database (no worker needed: jobs are set up in
the state under test, with real frames built by pipeline.delivery.previews)."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from pipeline.delivery.spin import spin_document
from pipeline.display.job_display import failure_advice, stage_bars
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import finished_frames, frames_dir, storage

__all__ = ["storage"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def product(owner) -> Product:
    return Product.objects.create(owner=owner, name="Teapot", sku="TEA-1")


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def running_job(product: Product, **fields) -> Job:
    now = timezone.now()
    defaults = dict(status=Job.Status.RUNNING, stage=Job.Stage.TRAIN, stage_progress=0.4,
                    progress=0.41, eta_seconds=200, message="step 40/100, loss 0.0300",
                    colmap_started_at=now - timedelta(seconds=90),
                    colmap_finished_at=now - timedelta(seconds=30),
                    train_started_at=now - timedelta(seconds=30), started_at=now)
    return Job.objects.create(product=product, **{**defaults, **fields})


class TestStageBars:
    def test_running_job(self, product):
        job = running_job(product)
        bars = stage_bars(job)
        assert [(b.key, b.state) for b in bars] == [
            ("colmap", "done"), ("train", "running"), ("render", "pending"),
            ("finalize", "pending")]
        assert [b.percent for b in bars] == [100, 40, 0, 0]
        assert bars[0].seconds == pytest.approx(60, abs=1)
        assert bars[1].seconds == pytest.approx(30, abs=5)

    def test_failed_job_marks_its_stage_and_says_what_to_do(self, product):
        job = running_job(product, status=Job.Status.FAILED, stage=Job.Stage.COLMAP,
                          stage_progress=0.9, colmap_finished_at=None, train_started_at=None,
                          error="Only 3 of 20 photos could be placed.")
        assert [b.state for b in stage_bars(job)] == ["failed", "pending", "pending",
                                                     "pending"]
        assert "overlapping" in failure_advice(job)

    def test_re_render_shows_only_its_stages(self, product):
        source = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
        job = Job.objects.create(product=product, source_job=source)
        assert [b.key for b in stage_bars(job)] == ["render", "finalize"]

    def test_done_stages_show_their_gpu_cost_on_modal(self, product):
        now = timezone.now()
        job = Job.objects.create(
            product=product, status=Job.Status.SUCCEEDED, stage=Job.Stage.DONE,
            backend=Job.Backend.MODAL, gpu_type="A10G", **{
                f"{s}_{edge}_at": now for s in Job.STAGES for edge in ("started", "finished")},
            stage_log=[{"stage": "train", "outcome": "succeeded", "gpu_seconds": 3600},
                       {"stage": "render", "outcome": "failed", "gpu_seconds": 100},
                       {"stage": "render", "outcome": "succeeded", "gpu_seconds": 360}])
        bars = {b.key: b for b in stage_bars(job)}
        assert all(b.state == "done" for b in bars.values())
        assert bars["colmap"].cost == 0
        assert bars["train"].cost == pytest.approx(10 * bars["render"].cost)
        assert bars["train"].cost > 0


class TestJobPage:
    def test_progress_card_with_bars_eta_messages_and_cancel(self, signed_in, product):
        job = running_job(product)
        html = signed_in.get(job.get_absolute_url()).content.decode()
        assert 'data-job-live' in html and "job-progress.js" in html
        assert html.count('class="stage-bar ') == 4
        assert "about 3 min 20 s left" in html
        assert "step 40/100" in html
        assert "Cancel job" in html and "Retry" not in html
        assert "data-spin-viewer" not in html  # nothing to view yet

    def test_fragment_is_the_card_alone_for_its_owner_only(self, client, signed_in, product,
                                                          django_user_model):
        job = running_job(product)
        url = reverse("pipeline:progress", args=[job.pk])
        fragment = signed_in.get(url).content.decode()
        assert fragment.strip().startswith('<section class="card job-progress"')
        assert 'data-job-status="running"' in fragment
        stranger = django_user_model.objects.create_user("other", password="pw-other-123")
        client.force_login(stranger)
        assert client.get(url).status_code == 404
        client.logout()
        assert client.get(url).status_code == 302  # to the sign-in page

    def test_failed_job_shows_the_engine_message_advice_and_retry(self, signed_in, product):
        job = running_job(product, status=Job.Status.FAILED, stage=Job.Stage.COLMAP,
                          colmap_finished_at=None, train_started_at=None,
                          error="Only 3 of 20 photos could be placed, too few.")
        html = signed_in.get(job.get_absolute_url()).content.decode()
        assert "Only 3 of 20 photos could be placed" in html
        assert "What to do:" in html and "overlapping" in html
        assert "Retry" in html and "data-job-live" not in html

    def test_finished_job_shows_viewer_downloads_snippet_and_loss(self, signed_in, product,
                                                                  storage):
        job = running_job(product, status=Job.Status.SUCCEEDED, stage=Job.Stage.DONE,
                          progress=1.0, metrics={"train": {"loss_curve": [
                              [0, 0.2], [50, 0.05], [99, 0.01]]}})
        finished_frames(job)
        html = signed_in.get(job.get_absolute_url()).content.decode()
        spin_url = reverse("pipeline:spin", args=[job.pk])
        assert f'data-src="{spin_url}"' in html
        assert "batch_00.zip" in html
        assert f"http://testserver{spin_url}" in html  # the embed snippet, absolute
        assert "spin-viewer.js" in html
        assert 'class="chart loss-curve"' in html


class TestSpinDocument:
    def test_rows_by_elevation_frames_by_azimuth_with_sprite(self, product, storage):
        job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
        finished_frames(job, rows=2, per_row=6)
        spin = spin_document(job)
        assert (spin["width"], spin["height"]) == (32, 32)
        assert [r["elevation"] for r in spin["rows"]] == [10.0, 30.0]
        for row in spin["rows"]:
            azimuths = [f["azimuth"] for f in row["frames"]]
            assert azimuths == sorted(azimuths) and len(azimuths) == 6
        first = spin["rows"][0]["frames"][0]
        assert first["preview"].endswith(".webp") and first["full"].endswith(".png")
        assert first["full"].startswith(f"/frames/{product.pk}/{job.pk}/frames/")
        sprite = spin["sprite"]
        assert sprite["count"] == 6 and sprite["row"] == 1
        with Image.open(frames_dir(job) / "sprite.webp") as sheet:
            assert sheet.width >= sprite["columns"] * sprite["tile_width"]

    def test_spin_json_is_public_for_finished_jobs_only(self, client, product, storage):
        job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
        finished_frames(job)
        response = client.get(reverse("pipeline:spin", args=[job.pk]))
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == "*"
        full = response.json()["rows"][0]["frames"][0]["full"]
        frame = client.get(full)
        assert frame.status_code == 200 and frame["Access-Control-Allow-Origin"] == "*"
        with Image.open(io.BytesIO(b"".join(frame.streaming_content))) as image:
            assert image.mode == "RGBA"

        running = running_job(Product.objects.create(owner=product.owner, name="Cup",
                                                     sku="CUP-1"))
        assert client.get(reverse("pipeline:spin", args=[running.pk])).status_code == 404
        lost = Job.objects.create(product=product, status=Job.Status.FAILED)
        assert client.get(reverse("pipeline:spin", args=[lost.pk])).status_code == 404

    def test_frame_files_cannot_leave_the_frames_folder(self, client, storage, settings):
        secret = Path(settings.FRAME_STORAGE_PATH).parent / "secret.txt"
        secret.write_text("no")
        for path in ("/frames/../secret.txt", "/frames/%2e%2e/secret.txt",
                     "/frames/..%2fsecret.txt"):
            assert client.get(path).status_code in (400, 404), path


class TestProductPage:
    CAMERAS = [
        {"name": f"{i:04d}_{'ab' * 4 if i == 5 else f'{i:08x}'}.jpg", "placed": i != 5,
         "position": None if i == 5 else [2.0 * (1 if i % 2 else -1), 0.3 * i, 0.5],
         "reason": "no match with the other photos" if i == 5 else None}
        for i in range(8)]

    def test_camera_plot_after_poses_names_the_unplaced_photo(self, signed_in, product):
        from tests.site.jobs_fixtures import add_photo, noise_png

        photo = add_photo(product, noise_png(1, (640, 640)), "IMG_0005.jpg", 0)
        cameras = [dict(c) for c in self.CAMERAS]
        cameras[5]["name"] = f"0005_{photo.sha256[:8]}.png"
        Job.objects.create(product=product, status=Job.Status.FAILED, stage=Job.Stage.COLMAP,
                           metrics={"colmap": {"cameras": cameras}})
        try:
            html = signed_in.get(product.get_absolute_url()).content.decode()
        finally:
            photo.image.delete(save=False)
        assert 'class="chart camera-plot"' in html
        assert "7 of 8 photos placed" in html
        assert "IMG_0005.jpg: no match with the other photos" in html

    def test_a_photo_left_out_for_its_pose_says_why_and_where_to_retake_it(
            self, signed_in, product):
        from tests.site.jobs_fixtures import add_photo, noise_png

        photo = add_photo(product, noise_png(2, (640, 640)), "IMG_0005.jpg", 0)
        cameras = [dict(c) for c in self.CAMERAS]
        cameras[5]["name"] = f"0005_{photo.sha256[:8]}.png"
        beside = add_photo(product, noise_png(3, (640, 640)), "IMG_0004.jpg", 1)
        cameras[5]["reason"] = ("placed inconsistently (only 31% of its matches with other "
                                "photos agree with where it was put): retake it from beside "
                                f"0004_{beside.sha256[:8]}.png and 0006_0badf00d.png, with "
                                "more of the product's details in view.")
        Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                           metrics={"colmap": {"cameras": cameras}})
        try:
            html = signed_in.get(product.get_absolute_url()).content.decode()
        finally:
            photo.image.delete(save=False)
            beside.image.delete(save=False)
        assert "7 of 8 photos placed" in html
        # The shop owner reads the names the photos were uploaded with.
        assert ("IMG_0005.jpg: placed inconsistently (only 31% of its matches with other "
                "photos agree with where it was put): retake it from beside IMG_0004.jpg and "
                "0006_0badf00d.png") in html

    def test_viewer_of_the_newest_finished_job(self, signed_in, product, storage):
        old = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
        finished_frames(old)
        Job.objects.create(product=product, status=Job.Status.FAILED)
        html = signed_in.get(product.get_absolute_url()).content.decode()
        assert f'data-src="{reverse("pipeline:spin", args=[old.pk])}"' in html
        assert "camera-plot" not in html


def test_cost_is_billed_at_the_gpu_each_stage_actually_ran_on():
    from decimal import Decimal

    from pipeline.costs import cost_of, stage_log_cost

    log = [
        {"stage": "colmap", "outcome": "succeeded", "gpu_seconds": 0.0, "gpu_type": None},
        # Asked for a T4; Modal's fallback list gave an A100 for training.
        {"stage": "train", "outcome": "succeeded", "gpu_seconds": 900, "gpu_type": "A100"},
        {"stage": "render", "outcome": "failed", "gpu_seconds": 50, "gpu_type": "T4"},
        {"stage": "render", "outcome": "succeeded", "gpu_seconds": 120, "gpu_type": "T4"},
    ]
    assert stage_log_cost(log) == cost_of(900, "A100") + cost_of(120, "T4")
    assert stage_log_cost(log) == Decimal("1.0117")
    assert stage_log_cost([]) == 0
