"""The catalogue is the one list of GPUs, stages and Modal functions; settings are
verified by system checks."""

from __future__ import annotations

from pipeline import checks, costs, modal_app
from pipeline.engine import catalogue


def test_modal_app_and_costs_use_the_catalogue():
    # modal_app is loaded by the Modal CLI on its own; it reads the same catalogue.
    assert tuple(modal_app.GPU_FALLBACK) == catalogue.GPU_FALLBACK
    assert modal_app.STAGE_FUNCTIONS == catalogue.STAGE_FUNCTIONS
    assert modal_app.VOLUME_NAME == catalogue.VOLUME_NAME
    prices = {g.name: g.price_per_hour for g in catalogue.GPUS.values()}
    assert prices == costs.GPU_PRICES_PER_HOUR
    assert tuple(catalogue.STAGE_WEIGHTS) == catalogue.STAGE_NAMES
    assert modal_app.TIMEOUTS["train"] == catalogue.STAGES["train"].modal_timeout_s


def test_task_timeout_must_outlast_the_stages(settings):
    assert checks.check_job_settings(None) == []
    settings.Q_TASK_TIMEOUT = sum(settings.JOB_STAGE_TIME_LIMITS.values())
    [error] = checks.check_job_settings(None)
    assert error.id == "pipeline.E001"


def test_unknown_gpu_and_bad_iterations_warn(settings, monkeypatch):
    settings.NERF_BACKEND, settings.GPU_TYPE = "modal", "H900"
    monkeypatch.setenv("NERF_DEFAULT_ITERATIONS", "many")
    assert [m.id for m in checks.check_job_settings(None)] == ["pipeline.W001",
                                                               "pipeline.W002"]
