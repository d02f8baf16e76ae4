"""Pipeline's part in products' life, connected when the app is ready (apps.py): no
deleting photos under a running job, a deleted product's active job cancelled, every
deleted job's files removed. Receivers live here and signals.py only declares, so
pipeline.jobs.transitions (which sends job_finished) and these receivers (which call
transitions) import each other in one direction only."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from pipeline.delivery.cleanup import remove_deleted_job_files
from pipeline.jobs.transitions import job_cancel
from pipeline.models import Job
from products.models import Photo, Product
from products.services import ProductError
from products.signals import deletion_requested


@receiver(deletion_requested, dispatch_uid="pipeline.settle_active_jobs")
def settle_active_jobs(sender, *, product: Product, **kwargs: Any) -> None:
    """No deleting photos under an active job; deleting the product cancels it first."""
    active = list(product.jobs.filter(status__in=Job.ACTIVE_STATUSES))
    if active and sender is Photo:
        raise ProductError("A job is queued or running on these photos; wait for it to "
                           "finish or cancel it before deleting photos.")
    for job in active:  # its stage is stopped with its files, after the commit
        job_cancel(job=job, message="Cancelled: its product is being deleted.")


@receiver(pre_delete, sender=Job, dispatch_uid="pipeline.remove_job_files")
def remove_job_files(sender, instance: Job, **kwargs: Any) -> None:
    """A deleted job (alone in the admin, or with its product) leaves nothing behind: its
    stage, workspace, frames and kept model go once the deletion commits."""
    # A copy: Django clears the deleted instance's pk.
    transaction.on_commit(partial(remove_deleted_job_files, copy.copy(instance)))
