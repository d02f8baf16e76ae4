"""The job page's Video card in a real browser: a video being made shows its progress and
then its failure in place (polled by job-videos.js, under the site's CSP); choosing WebM
and pressing "Make video" has the real django-q2 worker make one, which appears without a
reload and plays: the browser reads its size from the file."""

from __future__ import annotations

import re

import pytest

from pipeline.models import Job, Video
from products.models import Product
from tests.browser.conftest import sign_in
from tests.site.jobs_fixtures import finished_frames, storage

__all__ = ["storage"]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PASSWORD = "pw-video-123"


@pytest.fixture
def video_env(worker_env, storage) -> dict[str, str]:
    worker_env.update(storage)
    return worker_env


def test_make_a_webm_on_the_job_page(page, django_user_model, video_env, qcluster, artifacts):
    owner = django_user_model.objects.create_user("video", password=PASSWORD)
    product = Product.objects.create(owner=owner, name="Vase", sku="VASE-1")
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job, rows=1, per_row=12, size=64)
    sign_in(page, "video", PASSWORD)
    # A video the worker is making (no task behind it: the test moves it as the worker would).
    making = Video.objects.create(job=job, format="mp4", background="#ff8800",
                                  status=Video.Status.RUNNING, progress=0.4, attempts=1)
    page.goto(f"/jobs/{job.pk}/")

    card = page.locator("[data-video-card]")
    item = card.locator(f'[data-video-id="{making.pk}"]')
    assert item.locator("progress").evaluate("p => p.value") == pytest.approx(0.4)
    card.screenshot(path=str(artifacts / "job-video-making.png"))
    Video.objects.filter(pk=making.pk).update(
        status=Video.Status.FAILED, error="ffmpeg could not make the MP4 video: test.")
    item.get_by_role("alert").wait_for()
    assert "ffmpeg could not make the MP4 video" in item.inner_text()
    card.screenshot(path=str(artifacts / "job-video-failed.png"))

    card.get_by_label(re.compile("WebM")).check()
    card.get_by_role("button", name="Make video").click()
    page.wait_for_url(re.compile(r"#video$"))
    assert Video.objects.exclude(pk=making.pk).get().format == "webm"

    preview = card.locator("[data-video-state=succeeded] video")
    preview.wait_for(timeout=90_000)  # swapped in by the poll, no reload
    page.wait_for_function("() => document.querySelector('[data-video-state=succeeded] video')"
                           ".readyState >= 1", timeout=20_000)
    assert preview.evaluate("v => [v.videoWidth, v.videoHeight]") == [64, 64]
    assert card.get_by_role("link", name="Download the WEBM").is_visible()
    card.screenshot(path=str(artifacts / "job-video-ready.png"))
