"""Pipeline's part in products' life: jobs on a product's list, no deleting photos under a
running job, a deleted product's active job cancelled and every deleted job's files
removed; and the signal other apps hear a job's end by."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from django.db import models, transaction
from django.db.models.signals import pre_delete
from django.dispatch import Signal, receiver

from pipeline.cleanup import remove_deleted_job_files
from pipeline.models import Job
from products.models import Photo, Product
from products.services import ProductError
from products.signals import deletion_requested

# Sent once a job has succeeded or failed, after that change commits, with `job_id` (str)
# and `status` ("succeeded" or "failed"); sender=Job. Sent by pipeline.transitions with
# send_robust: a receiver's error is logged and never reaches the worker.
job_finished = Signal()


def latest_job_annotations() -> dict[str, Any]:
    """The product's newest job, for ProductQuerySet.with_summary()."""
    latest = Job.objects.filter(product=models.OuterRef("pk")).order_by("-created_at")
    return {
        "latest_job_id": models.Subquery(latest.values("pk")[:1]),
        "latest_job_status": models.Subquery(latest.values("status")[:1]),
        "latest_job_progress": models.Subquery(latest.values("progress")[:1]),
    }


@receiver(deletion_requested, dispatch_uid="pipeline.settle_active_jobs")
def settle_active_jobs(sender, *, product: Product, **kwargs: Any) -> None:
    """No deleting photos under an active job; deleting the product cancels it first."""
    # Deferred: pipeline.transitions imports this module for its signals.
    from pipeline.transitions import job_cancel

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
