"""pipeline.jobs.services: options, estimates, start, cancel, retry and re-render rules."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from pipeline import costs
from pipeline.delivery.storage import job_model_dir
from pipeline.errors import JobError
from pipeline.jobs.selectors import job_file_url, read_manifest
from pipeline.jobs.services import (
    JobOptions,
    job_cancel,
    job_estimate,
    job_rerender,
    job_retry,
    job_start,
)
from pipeline.jobs.tasks import run_job
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import (
    add_photo,
    delete_photo_files,
    drain_queue,
    frames_dir,
    noise_png,
    storage,
)

pytestmark = pytest.mark.django_db
__all__ = ["storage"]


@pytest.fixture(autouse=True)
def empty_queue():
    """Redis outlives the test database: start from an empty queue."""
    drain_queue()


@pytest.fixture
def product(django_user_model):
    owner = django_user_model.objects.create_user("shop", password="pw-shop-123")
    product = Product.objects.create(owner=owner, name="Mug", sku="MUG-1")
    yield product
    delete_photo_files(product)


@pytest.fixture
def photographed(product, settings):
    for i in range(settings.JOB_MIN_PHOTOS):
        add_photo(product, noise_png(i, (64, 48)), f"p{i}.png", i)
    return product


class TestOptions:
    @pytest.mark.parametrize("kwargs, message", [
        ({"preset": "fast"}, "Unknown preset 'fast'"),
        ({"iterations": 0}, "Training steps must be between 1 and"),
        ({"frame_count": 20_000}, "The frame count must be between 1 and 10000"),
        ({"frame_size": 8}, "The frame size must be between 32 and 4096 pixels"),
        ({"frame_rows": 12}, "The number of rows must be between 1 and 9"),
        ({"frame_fill": 40}, "The product's share of the frame must be between 50 and 98 "
                             "percent"),
        ({"frame_count": 2.5}, "The frame count must be a whole number"),
        ({"gpu_type": "H100"}, "Unknown GPU type 'H100': choose one of T4, A10G, A100"),
    ])
    def test_bad_options_are_refused_with_the_rule(self, kwargs, message):
        with pytest.raises(JobError, match=message):
            JobOptions(**kwargs)

    def test_defaults_come_from_the_preset_for_the_device(self, monkeypatch):
        monkeypatch.setenv("NERF_DEVICE", "cpu")
        local = JobOptions(preset="test").resolved("local")
        assert (local.frame_count, local.frame_size, local.gpu_type) == (8, 48, None)
        modal = JobOptions(preset="standard").resolved("modal")
        assert (modal.frame_count, modal.frame_size, modal.gpu_type) == (1440, 800, "T4")


class TestEstimate:
    def test_local_jobs_cost_nothing(self, photographed, monkeypatch):
        monkeypatch.setenv("NERF_DEVICE", "cpu")
        estimate = job_estimate(photographed, JobOptions(preset="test"), backend="local")
        assert estimate.cost_usd == 0 and estimate.gpu_type is None
        assert set(estimate.stage_seconds) == {"colmap", "train", "render", "finalize"}
        assert estimate.total_seconds == pytest.approx(sum(estimate.stage_seconds.values()))

    def test_modal_cost_is_gpu_seconds_times_the_price(self, photographed):
        opts = JobOptions(preset="standard", gpu_type="A10G")
        estimate = job_estimate(photographed, opts, backend="modal")
        gpu_s = estimate.stage_seconds["train"] + estimate.stage_seconds["render"]
        assert estimate.cost_usd == costs.cost_of(gpu_s, "A10G")
        assert estimate.cost_usd == (Decimal("1.10") * Decimal(str(gpu_s)) / 3600).quantize(
            Decimal("0.0001"))
        cheaper = job_estimate(photographed, JobOptions(preset="standard", gpu_type="T4"),
                               backend="modal")
        assert 0 < cheaper.cost_usd < estimate.cost_usd


class TestStart:
    def test_too_few_photos_is_refused_and_nothing_is_created(self, product, settings):
        add_photo(product, noise_png(1, (64, 48)), "only.png", 0)
        with pytest.raises(JobError, match=rf"1 usable photo; .* at least "
                                           rf"{settings.JOB_MIN_PHOTOS}"):
            job_start(product, JobOptions(preset="test"))
        assert not Job.objects.exists()

    def test_photos_whose_files_are_gone_do_not_count(self, photographed):
        photographed.photos.first().image.delete(save=False)
        with pytest.raises(JobError, match="usable photos"):
            job_start(photographed, JobOptions(preset="test"))

    def test_start_creates_a_queued_job_and_enqueues_the_task(
            self, photographed, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            job = job_start(photographed, JobOptions(preset="test", frame_count=4),
                            backend="local")
        job.refresh_from_db()
        assert (job.status, job.attempts, job.frame_count, job.backend) == (
            "queued", 1, 4, "local")
        assert job.estimated_cost == 0 and job.eta_seconds > 0
        queued = drain_queue()
        assert [(t["func"], t["args"]) for t in queued] == [
            ("pipeline.jobs.tasks.run_job", (str(job.pk), 1))]
        assert job.task_id == queued[0]["id"]

    def test_a_second_job_for_the_same_product_is_refused(self, photographed):
        job_start(photographed, JobOptions(preset="test"), enqueue=False)
        with pytest.raises(JobError, match="already has a job queued or running"):
            job_start(photographed, JobOptions(preset="test"), enqueue=False)
        assert Job.objects.count() == 1


class TestClaim:
    def test_a_task_delivered_twice_runs_the_job_once(self, photographed, storage):
        job = job_start(photographed, JobOptions(preset="test"), enqueue=False)
        Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)  # the first delivery
        assert run_job(str(job.pk), 1) == "skipped"
        job.refresh_from_db()
        assert job.status == "running" and job.stage_log == []

    def test_an_old_attempts_task_does_nothing_after_a_retry(self, photographed, storage):
        job = job_start(photographed, JobOptions(preset="test"), enqueue=False)
        Job.objects.filter(pk=job.pk).update(attempts=2)
        assert run_job(str(job.pk), 1) == "skipped"
        assert Job.objects.get(pk=job.pk).status == "queued"


class TestCancelRetry:
    def test_cancel_a_queued_job_then_cancel_again(self, photographed):
        job = job_start(photographed, JobOptions(preset="test"), enqueue=False)
        job = job_cancel(job)
        assert job.status == "cancelled" and job.finished_at is not None
        with pytest.raises(JobError, match="already cancelled; there is nothing to cancel"):
            job_cancel(job)

    def test_retry_resumes_at_the_first_unfinished_stage(
            self, photographed, django_capture_on_commit_callbacks):
        job = job_start(photographed, JobOptions(preset="test"), enqueue=False)
        now = timezone.now()
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, error="boom", colmap_started_at=now,
            colmap_finished_at=now, train_started_at=now, finished_at=now)
        job.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            job = job_retry(job)
        assert (job.status, job.attempts, job.error) == ("queued", 2, "")
        assert job.message == "Queued again: resumes at training."
        assert [t["args"] for t in drain_queue()] == [(str(job.pk), 2)]

    def test_only_failed_or_cancelled_jobs_can_be_retried(self, photographed):
        job = job_start(photographed, JobOptions(preset="test"), enqueue=False)
        with pytest.raises(JobError, match="this one is queued"):
            job_retry(job)

    def test_retry_is_refused_while_another_job_is_active(self, photographed):
        first = job_start(photographed, JobOptions(preset="test"), enqueue=False)
        first = job_cancel(first)
        job_start(photographed, JobOptions(preset="test"), enqueue=False)
        with pytest.raises(JobError, match="already has a job queued or running"):
            job_retry(first)


class TestRerender:
    def test_refused_without_a_kept_model(self, photographed, storage):
        job = Job.objects.create(product=photographed, status=Job.Status.SUCCEEDED)
        with pytest.raises(JobError, match="no trained model kept"):
            job_rerender(job, JobOptions(frame_count=12))

    def test_creates_a_render_only_job_from_the_kept_model(self, photographed, storage,
                                                           monkeypatch):
        monkeypatch.setenv("NERF_DEVICE", "cpu")
        job = Job.objects.create(product=photographed, status=Job.Status.SUCCEEDED,
                                 preset="test")
        (job_model_dir(job) / "model").mkdir(parents=True)
        new = job_rerender(job, JobOptions(frame_count=12, frame_size=64, frame_rows=2,
                                           frame_fill=75))
        assert new.source_job == job and new.is_render_only
        assert new.planned_stages == ("render", "finalize")
        assert (new.frame_count, new.frame_size, new.frame_rows, new.frame_fill,
                new.status) == (12, 64, 2, 75, "queued")
        # A re-render of the re-render renders the same trained model.
        Job.objects.filter(pk=new.pk).update(status=Job.Status.SUCCEEDED)
        again = job_rerender(Job.objects.get(pk=new.pk), JobOptions(frame_count=4))
        assert again.source_job == job


def test_result_locations(photographed, storage, settings):
    job = Job.objects.create(product=photographed)
    assert frames_dir(job) == settings.FRAME_STORAGE_PATH / str(photographed.pk) / str(
        job.pk)
    assert job_file_url(job, "sprite.webp") == (
        f"/frames/{photographed.pk}/{job.pk}/sprite.webp")
    assert read_manifest(job) is None
