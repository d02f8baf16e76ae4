"""System checks for the pipeline's settings (run by manage.py before serving, migrating
or starting the worker)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from pipeline.engine.catalogue import GPUS
from pipeline.engine.errors import InputError
from pipeline.engine.presets import get_preset

# django-q2 must not kill a job before its stages' own time limits can.
TASK_TIMEOUT_MARGIN_S = 600


@register()
def check_job_settings(app_configs, **kwargs) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if sum(settings.JOB_STAGE_TIME_LIMITS.values()) + TASK_TIMEOUT_MARGIN_S \
            >= settings.Q_TASK_TIMEOUT:
        errors.append(Error(
            "Q_TASK_TIMEOUT must outlast all stage time limits together.",
            hint=f"Set Q_TASK_TIMEOUT above the sum of JOB_COLMAP_TIME_LIMIT, "
                 f"JOB_TRAIN_TIME_LIMIT and JOB_RENDER_TIME_LIMIT plus "
                 f"{TASK_TIMEOUT_MARGIN_S} s.", id="pipeline.E001"))
    if settings.NERF_BACKEND == "modal" and settings.GPU_TYPE not in GPUS:
        # A warning: jobs asking for it are refused with the choices, the site still runs.
        errors.append(Warning(
            f"Unknown GPU type {settings.GPU_TYPE!r}.",
            hint=f"Set GPU_TYPE_DEV / GPU_TYPE_PROD to one of {', '.join(GPUS)}.",
            id="pipeline.W001"))
    try:
        get_preset("standard", "cuda")  # reads NERF_DEFAULT_ITERATIONS
    except InputError as exc:
        errors.append(Warning(str(exc), id="pipeline.W002"))
    return errors
