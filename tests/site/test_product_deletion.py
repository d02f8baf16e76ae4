"""Nothing left behind: deleting a product (API or page) cancels its running job, stops
its engine stage and removes, once the deletion commits, every file of its jobs: their
workspaces (local disk, or the Modal volume through the Modal backend, against its fake at
the network edge), published frames and kept models. The cleanup schedule removes a
workspace whose job no longer exists once it has not changed for the cleanup period."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
from django.test import Client

from accounts.tokens import create_token
from pipeline.backends.local import LocalBackend
from pipeline.backends.modal import ModalBackend
from pipeline.delivery.cleanup import cleanup_workspaces
from pipeline.delivery.storage import job_model_dir, publish_job_frames
from pipeline.models import Job
from products.models import Product
from tests.conftest import wait_for
from tests.fake_modal import FAKE_TOKEN, FakeModalClient, FakeModalVolume
from tests.site.jobs.test_recovery import gone, orphan_engine
from tests.site.jobs_fixtures import add_photo, noise_png, storage
from tests.site.test_modal_backend import Gate

__all__ = ["storage"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def product(owner, storage, settings) -> Product:
    product = Product.objects.create(owner=owner, name="Mug", sku="MUG-1")
    for i in range(2):
        add_photo(product, noise_png(i, (64, 48)), f"p{i}.png", i)
    return product


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def finished_job(product: Product, backend: str, workspace_of, tmp_path: Path) -> Job:
    """A succeeded job with a workspace, published frames and a kept model, all real files."""
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED, backend=backend,
                             attempts=1)
    workspace = workspace_of(str(job.pk))
    for rel in ("images.zip", "model/nerfacto/config.yml", "frames/batch_00.zip"):
        (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
        (workspace / rel).write_bytes(b"x" * 1024)
    built = tmp_path / f"built-{job.pk}"
    (built / "frames").mkdir(parents=True)
    (built / "frames" / "0000.png").write_bytes(b"png")
    (built / "manifest.json").write_text(json.dumps({"count": 1}))
    publish_job_frames(job, built)
    for rel in ("model/nerfacto/step-1.ckpt", "compare/compare.json"):
        path = job_model_dir(job) / rel
        path.parent.mkdir(parents=True)
        path.write_bytes(b"model")
    return job


def delete_through_api(owner, product, django_capture_on_commit_callbacks) -> None:
    _, token = create_token(owner, "tests")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/products/{product.pk}")
    assert response.status_code == 204, response.content
    assert not Product.objects.filter(pk=product.pk).exists()
    assert not Job.objects.exists()


def test_delete_through_the_api_leaves_no_file_of_its_jobs_local(
        owner, product, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setenv("NERF_DEVICE", "cpu")
    finished_job(product, "local", LocalBackend().workspace, tmp_path)
    # A second job, running: a real engine stage in its own process group.
    running_id = str(uuid.uuid4())
    handle = orphan_engine(tmp_path, running_id)
    Job.objects.create(id=running_id, product=product, backend="local", attempts=1,
                       status=Job.Status.RUNNING, backend_state={"handle": handle})
    assert files_under(settings.NERF_DATA_ROOT) and files_under(settings.FRAME_STORAGE_PATH)
    assert files_under(settings.MODEL_STORAGE_PATH)

    delete_through_api(owner, product, django_capture_on_commit_callbacks)

    wait_for(lambda: gone(handle["pid"]), timeout=30, what="the engine stage to stop")
    assert files_under(settings.NERF_DATA_ROOT) == []
    assert files_under(settings.FRAME_STORAGE_PATH) == []
    assert files_under(settings.MODEL_STORAGE_PATH) == []


@pytest.fixture
def modal_cloud(settings, monkeypatch, tmp_path) -> FakeModalClient:
    """NERF_BACKEND=modal against the fake Modal cloud (the network edge)."""
    settings.MODAL_TOKEN_ID, settings.MODAL_TOKEN_SECRET = FAKE_TOKEN
    settings.MODAL_APP_NAME = "nerf-test"
    monkeypatch.setattr(ModalBackend, "_clients", {})
    cloud = FakeModalClient(FakeModalVolume(tmp_path / "volume"),
                            {"train_nerf": Gate(), "render_frames": Gate()})
    monkeypatch.setattr("pipeline.backends.modal._modal_sdk", lambda: cloud)
    yield cloud
    for gate in cloud.functions.values():
        gate.opened.set()


def test_delete_through_the_api_leaves_no_file_of_its_jobs_modal(
        owner, product, settings, tmp_path, modal_cloud, django_capture_on_commit_callbacks):
    backend = ModalBackend()
    volume_jobs = modal_cloud.volume.root / "jobs"
    finished_job(product, "modal", lambda job_id: volume_jobs / job_id, tmp_path)
    # A running job: its stage is a Modal call that runs until cancelled.
    running = Job.objects.create(product=product, backend="modal", status="running",
                                 attempts=1)
    (volume_jobs / str(running.pk) / "dataset").mkdir(parents=True)
    (volume_jobs / str(running.pk) / "dataset" / "transforms.json").write_text("{}")
    handle = backend.start(str(running.pk), "train", [], time_limit=600)
    Job.objects.filter(pk=running.pk).update(backend_state={"handle": handle})
    stranger = volume_jobs / str(uuid.uuid4())  # another site's, on a shared volume
    stranger.mkdir()
    (stranger / "images.zip").write_bytes(b"theirs")

    delete_through_api(owner, product, django_capture_on_commit_callbacks)

    assert modal_cloud.calls[handle["call_id"]].cancelled == [True]  # container stopped
    assert sorted(p.name for p in volume_jobs.iterdir()) == [stranger.name]
    assert files_under(settings.FRAME_STORAGE_PATH) == []
    assert files_under(settings.MODEL_STORAGE_PATH) == []


def test_the_page_cancels_a_running_job_and_deletes_the_product(
        owner, product, settings, tmp_path, django_capture_on_commit_callbacks):
    job = Job.objects.create(product=product, status=Job.Status.RUNNING, attempts=1)
    workspace = LocalBackend().workspace(str(job.pk))
    workspace.mkdir(parents=True)
    (workspace / "images.zip").write_bytes(b"x")
    page = Client()
    page.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = page.post(f"/products/{product.pk}/delete/", follow=True)
    assert "Deleted Mug with its photos and jobs." in response.content.decode()
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not workspace.exists()


def test_a_failed_deletion_removes_nothing(owner, product, settings, tmp_path,
                                           django_capture_on_commit_callbacks):
    """Files go only once the deletion commits: a rolled-back deletion keeps them."""
    from django.db import transaction

    from products.services import delete_product

    backend = LocalBackend()
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED, attempts=1)
    backend.workspace(str(job.pk)).mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, \
            pytest.raises(RuntimeError), transaction.atomic():
        delete_product(product)
        raise RuntimeError("the request failed after the delete")
    assert callbacks == []
    assert backend.workspace_exists(str(job.pk))
    assert Job.objects.filter(pk=job.pk).exists()


def test_the_schedule_removes_workspaces_whose_job_is_gone(storage, settings, product,
                                                           modal_cloud):
    """E.g. deleted while the Modal volume could not be reached."""
    settings.NERF_BACKEND = "modal"
    local, modal = LocalBackend(), ModalBackend()
    old = time.time() - (settings.MODAL_VOLUME_CLEANUP_HOURS + 1) * 3600
    gone_local, gone_modal, recent = (str(uuid.uuid4()) for _ in range(3))
    for ws in (local.workspace(gone_local), local.workspace(recent),
               modal_cloud.volume.root / "jobs" / gone_modal):
        (ws / "model").mkdir(parents=True)
        (ws / "model" / "object.json").write_text("{}")
    for ws in (local.workspace(gone_local), modal_cloud.volume.root / "jobs" / gone_modal):
        for path in [ws, *ws.rglob("*")]:
            os.utime(path, (old, old))
    kept = Job.objects.create(product=product, status=Job.Status.FAILED, attempts=1)
    local.workspace(str(kept.pk)).mkdir(parents=True)  # a job that exists: its own rules
    os.utime(local.workspace(str(kept.pk)), (old, old))

    Job.objects.create(product=product, backend="local", status="succeeded", attempts=1)
    assert sorted(cleanup_workspaces()) == sorted([gone_local, gone_modal])
    assert not local.workspace_exists(gone_local) and not modal.workspace_exists(gone_modal)
    assert local.workspace_exists(recent) and local.workspace_exists(str(kept.pk))
