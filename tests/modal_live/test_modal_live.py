"""Against Modal's cloud: runs only when MODAL_TOKEN_ID is set (with MODAL_TOKEN_SECRET),
on the app deployed as MODAL_APP_NAME (default nerf-dev):

    ENVIRONMENT=development modal deploy pipeline/modal_app.py --name nerf-dev
    MODAL_TOKEN_ID=… MODAL_TOKEN_SECRET=… .venv/bin/pytest tests/modal_live -k modal

First the deployed image's health check on a GPU, then a `test`-preset job end to end
through the worker's task: photos up to the volume, poses, training and frames on Modal,
frames back, cost on the job, workspace deleted. It costs a few cents.
"""

from __future__ import annotations

import json
import os

import pytest

from pipeline import costs
from pipeline.backends import get_backend
from pipeline.jobs.services import JobOptions, job_start
from pipeline.jobs.tasks import run_job
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import add_photos_from, delete_photo_files, frames_dir, storage
from tests.synthetic_scene import make_scene

__all__ = ["storage"]
pytestmark = [
    pytest.mark.modal_live,
    pytest.mark.skipif(not os.environ.get("MODAL_TOKEN_ID"),
                       reason="talks to Modal's cloud: set MODAL_TOKEN_ID and "
                              "MODAL_TOKEN_SECRET, and deploy pipeline/modal_app.py"),
]


def test_modal_live_health_check(settings):
    import modal

    backend = get_backend("modal")
    health = modal.Function.from_name(settings.MODAL_APP_NAME, "health_check",
                                      client=backend.client())
    report = health.remote()
    assert report["ok"] is True, report
    assert report["device"] == "cuda" and report["gpu"] in costs.GPU_PRICES_PER_HOUR, report
    assert report["packages"]["nerfstudio"] == "1.1.5" and report["volume_writable"]


@pytest.mark.django_db(transaction=True)
def test_modal_live_test_preset_job_end_to_end(settings, storage, tmp_path,
                                               django_user_model):
    settings.CLEANUP_AFTER_COLLECT = True
    owner = django_user_model.objects.create_user("live", password="pw-live-123")
    product = Product.objects.create(owner=owner, name="Box", sku="LIVE-1")
    scene = make_scene(tmp_path / "scene", n_views=24)
    add_photos_from(product, scene.images_dir)
    try:
        job = job_start(product, JobOptions(preset="test", frame_count=12, frame_size=128),
                        backend="modal", enqueue=False)
        assert run_job(str(job.pk), job.attempts) == Job.Status.SUCCEEDED, \
            Job.objects.get(pk=job.pk).error
        job.refresh_from_db()
        manifest = json.loads((frames_dir(job) / "manifest.json").read_text())
        assert manifest["count"] == 12 and manifest["width"] == 128
        assert job.gpu_seconds > 0 and job.actual_cost > 0
        assert [entry["outcome"] for entry in job.stage_log] == ["succeeded"] * 3
        assert not get_backend("modal").workspace_exists(str(job.pk))
    finally:
        delete_photo_files(product)
