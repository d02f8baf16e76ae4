"""ModalBackend's own logic, with a fake only at the network edge (tests/fake_modal.py):
upload, spawn, poll, progress, cancel, download, GPU override, and the errors that tell
the user how to fix Modal's setup while the rest of the site keeps working.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from pipeline import modal_app
from pipeline.backends import BackendError, StageStatus, get_backend
from pipeline.backends.modal import ModalBackend
from pipeline.delivery.cleanup import cleanup_workspaces
from pipeline.jobs.services import JobOptions, job_estimate, job_start
from pipeline.jobs.tasks import JobRunner, run_job
from pipeline.models import Job
from products.models import Product
from tests.fake_modal import FAKE_TOKEN, FakeModalClient, FakeModalVolume
from tests.site.jobs_fixtures import add_photo, delete_photo_files, noise_png, storage
from tests.synthetic_scene import make_scene

__all__ = ["storage"]
pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")


@pytest.fixture
def modal_settings(settings, monkeypatch):
    settings.MODAL_TOKEN_ID, settings.MODAL_TOKEN_SECRET = FAKE_TOKEN
    settings.MODAL_APP_NAME = "nerf-test"
    settings.GPU_TYPE = "T4"
    monkeypatch.setattr(ModalBackend, "_clients", {})  # no client from another test
    return settings


@pytest.fixture
def volume(tmp_path) -> FakeModalVolume:
    return FakeModalVolume(tmp_path / "volume")


class Gate:
    """A deployed function whose call runs until the test opens the gate."""

    def __init__(self, result=None, error: BaseException | None = None) -> None:
        self.opened = threading.Event()
        self.result, self.error = result, error

    def __call__(self, job_id: str, args: list[str]):
        assert self.opened.wait(30)
        if self.error is not None:
            raise self.error
        return self.result


def make_backend(volume: FakeModalVolume, **functions) -> tuple[ModalBackend, FakeModalClient]:
    cloud = FakeModalClient(volume, functions)
    return ModalBackend(sdk=cloud), cloud


def finished(backend, job, handle, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = backend.poll(job, handle)
        if result.finished:
            return result
        time.sleep(0.1)
    pytest.fail("the stage did not finish")


def summary(exit_code=0, **extra):
    return {"stage": "train", "exit_code": exit_code, "status": "succeeded" if not exit_code
            else "failed", "message": "", "error": "", "seconds": 61.5, "gpu": "A10G", **extra}


def test_modal_backend_is_registered_and_needs_nothing_to_start(settings):
    settings.MODAL_TOKEN_ID = settings.MODAL_TOKEN_SECRET = ""
    backend = get_backend("modal")  # real Modal library; nothing contacted yet
    assert isinstance(backend, ModalBackend) and backend.name == "modal"
    with pytest.raises(BackendError, match="Modal credentials are missing: set MODAL_TOKEN_ID "
                                           "and MODAL_TOKEN_SECRET"):
        backend.prepare(str(uuid.uuid4()), Path("images.zip"))
    assert backend.list_workspaces() == []  # the cleanup schedule keeps running


def test_modal_files_in_and_out(modal_settings, volume, tmp_path):
    backend, cloud = make_backend(volume)
    job = str(uuid.uuid4())
    with pytest.raises(ValueError):
        backend.workspace("../../etc")
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as zf:
        zf.writestr("a.png", b"x")
    backend.prepare(job, images)
    backend.prepare(job, images)  # a retry replaces it
    ws = volume.root / "jobs" / job
    assert zipfile.ZipFile(ws / "images.zip").namelist() == ["a.png"]
    assert volume.uploads == [(f"/jobs/{job}/images.zip", True)] * 2
    assert cloud.connections == [FAKE_TOKEN]  # one client, reused
    assert backend.workspace_exists(job) and not backend.has_outputs(job, "colmap")

    (ws / "dataset").mkdir()
    (ws / "dataset" / "transforms.json").write_text("{}")
    (ws / "model" / "nerfacto" / "nerfstudio_models").mkdir(parents=True)
    (ws / "model" / "object.json").write_text("{}")
    assert backend.has_outputs(job, "colmap") and not backend.has_outputs(job, "train")
    with pytest.raises(BackendError, match=r"model is incomplete \(missing "
                                           r"dataset/transforms_train.json\)"):
        backend.collect_model(job, tmp_path / "kept")
    (ws / "dataset" / "transforms_train.json").write_text('{"frames": []}')
    (ws / "model" / "nerfacto" / "config.yml").write_text("cfg")
    (ws / "model" / "nerfacto" / "nerfstudio_models" / "step-000000119.ckpt").write_bytes(
        b"\0" * 200_000)
    (ws / "model" / "train.json").write_text("{}")
    assert backend.has_outputs(job, "train")
    backend.collect_model(job, tmp_path / "kept")
    kept = tmp_path / "kept"
    assert (kept / "model" / "nerfacto" / "config.yml").read_text() == "cfg"
    assert (kept / "model" / "nerfacto" / "nerfstudio_models" / "step-000000119.ckpt"
            ).stat().st_size == 200_000
    assert (kept / "dataset" / "transforms_train.json").read_text() == '{"frames": []}'
    assert not list(kept.rglob(".*.partial"))

    other = str(uuid.uuid4())
    backend.restore_model(other, kept)
    assert backend.has_outputs(other, "train") and backend.has_outputs(other, "colmap")
    assert sorted(backend.list_workspaces()) == sorted([job, other])
    assert backend.cleanup(other) and not backend.workspace_exists(other)
    assert not backend.cleanup(other)


def test_modal_collects_frame_batches_and_manifest(modal_settings, volume, tmp_path):
    backend, _ = make_backend(volume)
    job = str(uuid.uuid4())
    with pytest.raises(BackendError, match="left no frames/manifest.json"):
        backend.collect_frames(job, tmp_path / "out")
    frames = volume.root / "jobs" / job / "frames"
    frames.mkdir(parents=True)
    for n in range(3):
        (frames / f"batch_{n:02d}.zip").write_bytes(bytes([n]) * 1000)
    (frames / "manifest.json").write_text('{"count": 3}')
    (frames / ".batch_03.zip.tmp").write_bytes(b"half")  # not a batch
    manifest = backend.collect_frames(job, tmp_path / "out")
    assert json.loads(manifest.read_text()) == {"count": 3}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "batch_00.zip", "batch_01.zip", "batch_02.zip", "manifest.json"]
    assert (tmp_path / "out" / "batch_02.zip").read_bytes() == b"\2" * 1000


def test_modal_collects_the_comparison(modal_settings, volume, tmp_path):
    backend, _ = make_backend(volume)
    job = str(uuid.uuid4())
    assert backend.collect_comparison(job, tmp_path / "none") is None
    compare = volume.root / "jobs" / job / "frames" / "compare"
    compare.mkdir(parents=True)
    (compare / "photo_1.jpg").write_bytes(b"\xff\xd8photo")
    (compare / "render_1.png").write_bytes(b"\x89PNGrender")
    (compare / ".render_2.png.tmp").write_bytes(b"half")  # not a finished file
    (compare / "compare.json").write_text('{"verdict": "fair"}')
    doc = backend.collect_comparison(job, tmp_path / "out")
    assert doc == tmp_path / "out" / "compare.json"
    assert json.loads(doc.read_text()) == {"verdict": "fair"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "compare.json", "photo_1.jpg", "render_1.png"]
    assert (tmp_path / "out" / "render_1.png").read_bytes() == b"\x89PNGrender"


def test_modal_stage_is_spawned_polled_and_read_from_the_volume(modal_settings, volume):
    gate = Gate(result=summary(message="Trained 15000 steps."))
    backend, cloud = make_backend(volume, train_nerf=gate)
    job = str(uuid.uuid4())
    handle = backend.start(job, "train", ["--preset", "test", "--iterations", 50],
                           time_limit=600)
    assert handle["backend"] == "modal" and handle["function"] == "train_nerf"
    assert handle["call_id"] in cloud.calls and handle["app"] == "nerf-test"
    json.dumps(handle)  # kept in Job.backend_state
    assert cloud.spawned == [("train_nerf", (job, ["--preset", "test", "--iterations", "50"]),
                              {})]  # the deployed default GPU keeps Modal's fallback list

    assert backend.read_progress(job) is None
    (volume.root / "jobs" / job).mkdir(parents=True)
    (volume.root / "jobs" / job / "progress.json").write_text(
        json.dumps({"stage": "train", "stage_progress": 0.25}))
    assert backend.read_progress(job)["stage_progress"] == 0.25
    result = backend.poll(job, handle)
    assert result.status == StageStatus.RUNNING and not result.finished

    gate.opened.set()
    result = finished(backend, job, handle)
    assert result.status == StageStatus.SUCCEEDED and result.exit_code == 0
    assert result.seconds == 61.5  # billed seconds measured in the container
    assert result.extra == {"gpu": "A10G", "message": "Trained 15000 steps."}

    (volume.root / "jobs" / job / "progress.json").write_text("{half a docu")
    assert backend.read_progress(job) is None


def test_modal_gpu_override_pins_the_jobs_gpu(modal_settings, volume):
    done = summary()
    backend, cloud = make_backend(volume, train_nerf=lambda *a: done,
                                  render_frames=lambda *a: done,
                                  process_colmap=lambda *a: done)
    job = str(uuid.uuid4())
    assert backend.start(job, "train", [], time_limit=60, gpu_type="A100")["gpu"] == "A100"
    backend.start(job, "render", [], time_limit=60, gpu_type="T4")
    backend.start(job, "colmap", [], time_limit=60, gpu_type="A100")
    assert [(name, options) for name, _, options in cloud.spawned] == [
        ("train_nerf", {"gpu": "A100"}), ("render_frames", {}), ("process_colmap", {})]


def test_modal_stage_failures(modal_settings, volume):
    from modal.exception import FunctionTimeoutError

    engine_error = summary(exit_code=3, error="The workspace has no camera poses yet: run "
                           "the colmap stage first.")
    backend, _ = make_backend(volume, train_nerf=lambda *a: engine_error,
                              render_frames=Gate(error=RuntimeError("CUDA out of memory")),
                              process_colmap=Gate(error=FunctionTimeoutError("timed out")))
    job = str(uuid.uuid4())

    result = finished(backend, job, backend.start(job, "train", [], time_limit=60))
    assert result.status == StageStatus.FAILED and result.exit_code == 3
    assert result.error.startswith("The workspace has no camera poses yet")

    handle = backend.start(job, "render", [], time_limit=60)
    backend.sdk.functions["render_frames"].opened.set()
    result = finished(backend, job, handle)
    assert result.status == StageStatus.FAILED
    assert "failed on Modal: RuntimeError('CUDA out of memory')" in result.error

    handle = backend.start(job, "colmap", [], time_limit=60)
    backend.sdk.functions["process_colmap"].opened.set()
    result = finished(backend, job, handle)
    assert result.status == StageStatus.LOST and "took longer than its limit of 1 minutes" \
        in result.error

    bad = {**handle, "call_id": "fc-gone"}
    with pytest.raises(BackendError, match="no longer knows the call"):
        backend.poll(job, bad)


def test_modal_time_limit_and_cancel_stop_the_call(modal_settings, volume):
    backend, cloud = make_backend(volume, train_nerf=Gate(), render_frames=Gate())
    job = str(uuid.uuid4())
    handle = backend.start(job, "train", [], time_limit=0.3)
    assert backend.poll(job, handle).status == StageStatus.RUNNING
    time.sleep(0.4)
    result = backend.poll(job, handle)
    assert result.status == StageStatus.LOST and "took longer than its limit" in result.error
    assert cloud.calls[handle["call_id"]].cancelled == [True]  # container terminated

    handle = backend.start(job, "render", [], time_limit=600)
    other = ModalBackend(sdk=cloud)  # e.g. the web process, with only the handle
    other.cancel(job, handle)
    other.cancel(job, handle)  # idempotent
    assert cloud.calls[handle["call_id"]].cancelled == [True, True]
    result = backend.poll(job, handle)
    assert result.status == StageStatus.LOST and result.error == "The render stage was cancelled."
    backend.cancel(job, {})  # nothing started: nothing to do
    for gate in cloud.functions.values():
        gate.opened.set()


def test_modal_setup_errors_say_how_to_fix_them(modal_settings, volume, tmp_path):
    backend, cloud = make_backend(volume, train_nerf=lambda *a: summary())
    job = str(uuid.uuid4())

    modal_settings.MODAL_TOKEN_SECRET = "as-wrong"
    with pytest.raises(BackendError, match="Modal refused the credentials while trying to "
                                           "connect to Modal: check MODAL_TOKEN_ID"):
        backend.start(job, "train", [], time_limit=60)

    modal_settings.MODAL_TOKEN_ID = modal_settings.MODAL_TOKEN_SECRET = ""
    with pytest.raises(BackendError, match="Modal credentials are missing"):
        backend.read_progress(job)
    cloud.config.config.update(token_id=FAKE_TOKEN[0], token_secret=FAKE_TOKEN[1])
    assert backend.read_progress(job) is None  # `modal token new`'s ~/.modal.toml works

    modal_settings.MODAL_APP_NAME = "nerf-prod"
    modal_settings.ENVIRONMENT = "production"
    with pytest.raises(BackendError) as failed:
        ModalBackend(sdk=cloud).start(job, "train", [], time_limit=60)
    assert str(failed.value) == (
        "The Modal app 'nerf-prod' is not deployed (or has no function 'train_nerf'): "
        "deploy it with `ENVIRONMENT=production modal deploy pipeline/modal_app.py --name "
        "nerf-prod`, then retry the job.")


# --- with the real function bodies behind the fake network ------------------------------
@pytest.fixture
def deployed(modal_settings, volume, monkeypatch) -> tuple[ModalBackend, FakeModalClient]:
    """The fake cloud runs the real bodies of pipeline/modal_app.py on the same volume."""
    monkeypatch.setattr(modal_app, "VOLUME_ROOT", volume.root)
    monkeypatch.setattr(modal_app, "volume", volume)
    monkeypatch.setattr(modal_app, "COMMIT_INTERVAL_S", 0.5)
    monkeypatch.setenv("NERF_DEVICE", "cpu")
    functions = {name: getattr(modal_app, name).local
                 for name in modal_app.STAGE_FUNCTIONS.values()}
    return make_backend(volume, **functions)


def test_modal_engine_error_reaches_the_worker(deployed):
    backend, _ = deployed
    job = str(uuid.uuid4())
    result = finished(backend, job, backend.start(job, "render", ["--frames", "4"],
                                                   time_limit=120))
    assert result.status == StageStatus.FAILED and result.exit_code == 3
    assert "has no camera poses yet: run the colmap stage first" in result.error
    assert backend.read_progress(job)["error"] == result.error


@pytest.mark.slow
def test_modal_colmap_stage_runs_on_the_uploaded_photos(deployed, tmp_path):
    backend, cloud = deployed
    scene = make_scene(tmp_path / "scene", n_views=16)
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(scene.images_dir.glob("*.png")):
            zf.write(path, path.name)
    job = str(uuid.uuid4())
    backend.prepare(job, images)
    handle = backend.start(job, "colmap", [], time_limit=600)
    result = finished(backend, job, handle)
    assert result.status == StageStatus.SUCCEEDED, result.error
    assert backend.has_outputs(job, "colmap")
    doc = backend.read_progress(job)
    assert doc["stage"] == "colmap" and doc["status"] == "succeeded"
    assert result.extra["message"] == doc["message"]
    assert cloud.volume.events[0] == "reload" and cloud.volume.events[-1] == "commit"


# --- a whole job, through the worker's task -----------------------------------------------
@pytest.mark.django_db
def test_modal_training_gets_the_steps_the_site_worked_out(
        modal_settings, volume, storage, django_user_model, monkeypatch):
    """The engine on Modal cannot read the site's NERF_DEFAULT_ITERATIONS: the steps the
    estimate assumed are worked out on the site, stored on the job and always passed."""
    monkeypatch.setenv("NERF_DEFAULT_ITERATIONS", "1234")
    owner = django_user_model.objects.create_user("shop", password="pw-shop-123")
    product = Product.objects.create(owner=owner, name="Mug", sku="MUG-1")
    try:
        for i in range(modal_settings.JOB_MIN_PHOTOS):
            add_photo(product, noise_png(i, (64, 48)), f"p{i}.png", i)
        job = job_start(product, JobOptions(), backend="modal", enqueue=False)
        assert (job.preset, job.iterations) == ("standard", 1234)
        assert job_estimate(product, JobOptions(), backend="modal").iterations == 1234

        backend, cloud = make_backend(volume, train_nerf=lambda *a: summary())
        runner = JobRunner(job, backend)
        backend.start(str(job.pk), "train", runner.stage_args("train"), time_limit=60)
        job.iterations = None  # a job from before the steps were stored
        backend.start(str(job.pk), "train", runner.stage_args("train"), time_limit=60)
        assert [args for _, (_, args), _ in cloud.spawned] == [
            ["--preset", "standard", "--iterations", "1234"]] * 2

        # Steps asked for are kept as they are.
        assert JobOptions(preset="draft", iterations=77).resolved("modal").iterations == 77
    finally:
        delete_photo_files(product)


@pytest.mark.django_db
def test_modal_job_without_credentials_fails_clearly_and_the_site_works(
        settings, storage, client, django_user_model):
    settings.MODAL_TOKEN_ID = settings.MODAL_TOKEN_SECRET = ""
    owner = django_user_model.objects.create_user("shop", password="pw-shop-123")
    product = Product.objects.create(owner=owner, name="Mug", sku="MUG-1")
    try:
        for i in range(settings.JOB_MIN_PHOTOS):
            add_photo(product, noise_png(i, (64, 48)), f"p{i}.png", i)
        job = job_start(product, JobOptions(preset="test"), backend="modal", enqueue=False)
        assert job.gpu_type == settings.GPU_TYPE and job.estimated_cost > 0

        assert run_job(str(job.pk), job.attempts) == Job.Status.FAILED
        job.refresh_from_db()
        assert job.error.startswith("Modal credentials are missing: set MODAL_TOKEN_ID and "
                                    "MODAL_TOKEN_SECRET")
        assert job.backend_state == {} and job.actual_cost is None
        assert cleanup_workspaces(older_than_hours=0) == []

        client.force_login(owner)
        page = client.get(reverse("pipeline:job", args=[job.pk]))
        assert page.status_code == 200 and "Modal credentials are missing" in page.content.decode()
        assert client.get(product.get_absolute_url()).status_code == 200
    finally:
        delete_photo_files(product)
