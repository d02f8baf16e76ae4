"""Hears pipeline's job_finished; pipeline never imports this app."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from pipeline.signals import job_finished

from . import services


@receiver(job_finished, dispatch_uid="notifications.on_job_finished")
def on_job_finished(sender, *, job_id: str, status: str, **kwargs: Any) -> None:
    services.job_event_record(job_id=job_id, status=status)
