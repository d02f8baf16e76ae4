"""The Modal app (pipeline/modal_app.py): its definition for each ENVIRONMENT, and the
bodies of its functions run here through `.local()` on the synthetic scene.

The bodies run the real engine on a temporary folder that stands in for the volume mount;
the only fake is the Volume object itself (FakeModalVolume: records reload and commit).
"""

from __future__ import annotations

import importlib.util
import io
import json
import tomllib
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import modal_app
from tests.fake_modal import FakeModalVolume
from tests.synthetic_scene import make_scene

ROOT = Path(__file__).resolve().parents[2]
CONFIG_VARS = ("ENVIRONMENT", "MODAL_APP_NAME", "GPU_TYPE_DEV", "GPU_TYPE_PROD")

pytestmark = pytest.mark.filterwarnings("ignore:The .* function is executing locally")


def load_modal_app(monkeypatch: pytest.MonkeyPatch, **env: str):
    """A fresh import of pipeline/modal_app.py under `env`, as `modal deploy` does."""
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("modal_app_under_test",
                                                  ROOT / "pipeline" / "modal_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpus(function) -> list[str]:
    return [name for name, count in function.info().gpus if count == 1]


def test_modal_app_in_development(monkeypatch):
    app = load_modal_app(monkeypatch, ENVIRONMENT="development")
    assert app.app.name == "nerf-dev"
    for function in (app.train_nerf, app.render_frames, app.health_check):
        assert gpus(function) == ["T4", "A10G", "A100"]
    info = app.process_colmap.info()
    assert info.gpus == [] and info.cpu == 8.0  # poses run on CPU cores
    for function in (app.health_check, app.process_colmap, app.train_nerf, app.render_frames):
        mounts = function.info().volumes
        assert list(mounts) == ["/volumes/nerf-data"]
        assert mounts["/volumes/nerf-data"].name == "nerf-data"
    assert {f: getattr(app, f).info().timeout for f in app.STAGE_FUNCTIONS.values()} == {
        "process_colmap": 3600, "train_nerf": 4 * 3600, "render_frames": 2 * 3600}
    assert app.health_check.info().timeout == 300
    # Preemption retries the stages; a health check is cheap to run again by hand.
    assert [getattr(app, f).info().max_retries for f in app.STAGE_FUNCTIONS.values()] == [2] * 3
    assert app.health_check.info().max_retries is None


def test_modal_app_in_production_and_with_overrides(monkeypatch):
    app = load_modal_app(monkeypatch, ENVIRONMENT="production")
    assert app.app.name == "nerf-prod"
    assert gpus(app.train_nerf) == gpus(app.render_frames) == ["A10G", "A100"]

    app = load_modal_app(monkeypatch, ENVIRONMENT="production", GPU_TYPE_PROD="a100",
                         MODAL_APP_NAME="nerf-staging")
    assert app.app.name == "nerf-staging"
    assert gpus(app.train_nerf) == ["A100"]

    app = load_modal_app(monkeypatch, GPU_TYPE_DEV="A10G", GPU_TYPE_PROD="A100")
    assert app.app.name == "nerf-dev" and gpus(app.render_frames) == ["A10G", "A100"]

    with pytest.raises(ValueError, match=r"Unknown GPU type 'H200'.*T4, A10G, A100"):
        load_modal_app(monkeypatch, GPU_TYPE_DEV="H200")


def test_modal_image_installs_the_engine_pins_of_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in ("torch", "torchvision", "nerfstudio", "pycolmap"):
        pinned = [d for d in deps if d.split("=")[0].split(">")[0] == package]
        assert pinned and pinned[0] in modal_app.ENGINE_PACKAGES, package


# --- the function bodies, locally ------------------------------------------------------
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), n_views=16)


@pytest.fixture
def mounted(tmp_path, monkeypatch) -> FakeModalVolume:
    """A folder in place of /volumes/nerf-data, and the fake Volume the bodies sync."""
    volume = FakeModalVolume(tmp_path / "volume")
    monkeypatch.setattr(modal_app, "VOLUME_ROOT", volume.root)
    monkeypatch.setattr(modal_app, "volume", volume)
    monkeypatch.setenv("NERF_DEVICE", "cpu")
    return volume


def upload_photos(volume: FakeModalVolume, job: str, images_dir: Path) -> None:
    ws = volume.root / "jobs" / job
    ws.mkdir(parents=True)
    with zipfile.ZipFile(ws / "images.zip", "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(images_dir.glob("*.png")):
            zf.write(path, path.name)


def progress(volume: FakeModalVolume, job: str) -> dict:
    return json.loads((volume.root / "jobs" / job / "progress.json").read_text())


@pytest.mark.slow
def test_modal_functions_run_a_job_on_the_volume(mounted, scene, monkeypatch):
    monkeypatch.setattr(modal_app, "COMMIT_INTERVAL_S", 0.5)
    job = str(uuid.uuid4())
    ws = mounted.root / "jobs" / job
    upload_photos(mounted, job, scene.images_dir)

    colmap = modal_app.process_colmap.local(job, [])
    assert colmap["exit_code"] == 0 and colmap["status"] == "succeeded", colmap
    assert colmap["gpu"] is None and colmap["seconds"] > 0
    assert (ws / "dataset" / "transforms.json").exists() and (ws / "model" / "object.json").exists()
    # Each stage sees the latest volume first and leaves everything committed.
    assert mounted.events[0] == "reload" and mounted.events[-1] == "commit"

    mounted.events.clear()
    train = modal_app.train_nerf.local(job, ["--preset", "test"])
    assert train["exit_code"] == 0, train
    assert (ws / "model" / "nerfacto" / "config.yml").exists()
    assert json.loads((ws / "model" / "train.json").read_text())["step"] == 120
    assert progress(mounted, job)["status"] == "succeeded"
    assert mounted.events[0] == "reload" and mounted.events[-1] == "commit"
    # Committed while training too, so the worker saw progress.json move.
    assert mounted.events.count("commit") >= 3, mounted.events

    render = modal_app.render_frames.local(job, ["--frames", "6", "--size", "64",
                                                  "--batch-size", "4"])
    assert render["exit_code"] == 0, render
    assert render["message"] == progress(mounted, job)["message"]
    manifest = json.loads((ws / "frames" / "manifest.json").read_text())
    assert manifest["count"] == 6 and manifest["batches"] == ["batch_00.zip", "batch_01.zip"]
    for batch in manifest["batches"]:
        with zipfile.ZipFile(ws / "frames" / batch) as zf:
            for name in zf.namelist():
                rgba = np.asarray(Image.open(io.BytesIO(zf.read(name))))
                assert rgba.shape == (64, 64, 4), name
                assert (rgba[[0, 0, -1, -1], [0, -1, 0, -1], 3] == 0).all(), name
                assert rgba[28:36, 28:36, 3].mean() > 128, name


def test_modal_function_returns_the_engines_reason_on_failure(mounted):
    job = str(uuid.uuid4())
    result = modal_app.render_frames.local(job, [])
    assert result["exit_code"] == 3 and result["status"] == "failed"
    assert "has no camera poses yet: run the colmap stage first" in result["error"]
    assert progress(mounted, job)["error"] == result["error"]
    assert mounted.events == ["reload", "commit"]  # the failure is visible to the worker

    result = modal_app.train_nerf.local(job, ["--preset", "fastest"])
    assert result["exit_code"] == 2 and result["status"] == "failed"  # argparse said no
    assert "exit code 2" in result["error"]


def test_modal_function_keeps_to_the_jobs_workspace(mounted):
    with pytest.raises(ValueError, match="Not a job id"):
        modal_app.train_nerf.local("../../etc", [])
    with pytest.raises(ValueError, match="chosen by the job id"):
        modal_app.render_frames.local(str(uuid.uuid4()), ["--workspace", "/tmp/elsewhere"])
    assert not any(mounted.root.iterdir())


def test_modal_health_check_reports_packages_device_and_volume(mounted):
    report = modal_app.health_check.local()
    assert report["ok"] is True and report["app"] == modal_app.APP_NAME
    assert report["device"] == "cpu" and report["gpu"] is None
    assert report["packages"]["nerfstudio"] == "1.1.5"
    assert report["packages"]["pycolmap"].startswith("4.2")
    assert report["volume_writable"] is True and not any(mounted.root.iterdir())
