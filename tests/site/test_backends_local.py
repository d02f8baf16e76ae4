"""LocalBackend with real engine subprocesses: failures, time limits, cancel, files."""

from __future__ import annotations

import os
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from pipeline.backends import BackendError, StageStatus, get_backend
from pipeline.backends.local import LocalBackend
from pipeline.engine.catalogue import STAGES
from pipeline.engine.train import model_base_dir
from pipeline.engine.workspace import METHOD_NAME, MODEL_FILES, TRANSFORMS_TRAIN_NAME, Workspace
from tests.synthetic_scene import make_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), n_views=12, width=160, height=120)


@pytest.fixture
def backend(tmp_path, monkeypatch) -> LocalBackend:
    monkeypatch.setenv("NERF_DEVICE", "cpu")
    return LocalBackend(tmp_path / "data")


def wait_finished(backend, job_id, handle, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = backend.poll(job_id, handle)
        if result.finished:
            return result
        time.sleep(0.2)
    pytest.fail("the stage did not finish")


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_get_backend_names():
    assert isinstance(get_backend("local"), LocalBackend)
    with pytest.raises(BackendError, match="Unknown engine backend 'gpu'"):
        get_backend("gpu")


def test_layout_constants_match_the_engine():
    ws = Workspace(Path("/ws"))
    assert f"model/{METHOD_NAME}/config.yml" in STAGES["train"].outputs
    assert model_base_dir(ws) / "config.yml" == ws.root / STAGES["train"].outputs[0]
    assert f"dataset/{TRANSFORMS_TRAIN_NAME}" in MODEL_FILES


def test_workspace_ids_must_be_uuids(backend):
    with pytest.raises(ValueError):
        backend.workspace("../../etc")


def test_a_failed_stage_reports_the_engines_one_line_reason(backend):
    job = str(uuid.uuid4())
    handle = backend.start(job, "train", ["--preset", "test"], time_limit=300)
    result = wait_finished(backend, job, handle)
    assert result.status == StageStatus.FAILED and result.exit_code == 3
    assert "has no camera poses yet: run the colmap stage first" in result.error
    assert (backend.workspace(job) / "logs" / "train.log").read_text().count("error: ") == 1


def test_a_stage_past_its_time_limit_is_stopped(backend, scene):
    job = str(uuid.uuid4())
    scene.write_ground_truth_workspace(backend.workspace(job))
    handle = backend.start(job, "train", ["--preset", "test"], time_limit=4)
    result = wait_finished(backend, job, handle, timeout=60)
    assert result.status == StageStatus.LOST
    assert "took longer than its limit" in result.error
    assert not group_exists(handle["pgid"])


def test_cancel_from_another_process_stops_the_whole_group(backend, scene):
    job = str(uuid.uuid4())
    scene.write_ground_truth_workspace(backend.workspace(job))
    handle = backend.start(job, "train", ["--preset", "test"], time_limit=600)
    time.sleep(3)
    # The web process (or a new worker) has only the handle, not the child.
    proc = LocalBackend._children.pop(handle["pid"])
    other = LocalBackend(backend.jobs_root.parent)
    assert other.poll(job, handle).status == StageStatus.RUNNING
    started = time.monotonic()
    other.cancel(job, handle)
    assert time.monotonic() - started < 8
    proc.wait(timeout=5)
    assert not group_exists(handle["pgid"])
    assert other.poll(job, handle).status in (StageStatus.LOST, StageStatus.FAILED)
    other.cancel(job, handle)  # idempotent


def test_files_in_and_out(backend, scene, tmp_path):
    job = str(uuid.uuid4())
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as zf:
        zf.writestr("a.png", b"x")
    backend.prepare(job, images)
    assert zipfile.ZipFile(backend.workspace(job) / "images.zip").namelist() == ["a.png"]
    assert not backend.has_outputs(job, "colmap")
    scene.write_ground_truth_workspace(backend.workspace(job))
    assert backend.has_outputs(job, "colmap") and not backend.has_outputs(job, "train")

    with pytest.raises(BackendError, match="model is incomplete"):
        backend.collect_model(job, tmp_path / "kept")
    ws = backend.workspace(job)
    (ws / "model" / METHOD_NAME).mkdir()
    (ws / "model" / METHOD_NAME / "config.yml").write_text("cfg")
    (ws / "model" / "train.json").write_text("{}")
    (ws / "dataset" / TRANSFORMS_TRAIN_NAME).write_text("{}")
    backend.collect_model(job, tmp_path / "kept")
    assert (tmp_path / "kept" / "model" / METHOD_NAME / "config.yml").read_text() == "cfg"

    other = str(uuid.uuid4())
    backend.restore_model(other, tmp_path / "kept")
    assert backend.has_outputs(other, "train") and backend.has_outputs(other, "colmap")
    assert set(backend.list_workspaces()) == {job, other}
    assert backend.cleanup(other) and not backend.workspace_exists(other)
    assert not backend.cleanup(other)
