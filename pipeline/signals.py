"""Pipeline's part in products' life: jobs on a product's list, no deleting photos under a
running job, and a deleted product's job files removed with it; and the signal other apps
hear a job's end by."""

from __future__ import annotations

import shutil
from typing import Any

from django.db import models, transaction
from django.db.models.signals import pre_delete
from django.dispatch import Signal, receiver

from pipeline.models import Job
from pipeline.storage import delete_job_frames, job_model_dir
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


@receiver(deletion_requested, dispatch_uid="pipeline.refuse_while_active")
def refuse_while_active(sender, *, product: Product, **kwargs: Any) -> None:
    if not product.jobs.filter(status__in=Job.ACTIVE_STATUSES).exists():
        return
    if sender is Photo:
        raise ProductError("A job is queued or running on these photos; wait for it to "
                           "finish or cancel it before deleting photos.")
    raise ProductError(f"{product.name} has a job queued or running; cancel it "
                       "before deleting the product.")


@receiver(pre_delete, sender=Product, dispatch_uid="pipeline.remove_job_files")
def remove_job_files(sender, instance: Product, **kwargs: Any) -> None:
    """The product's jobs go with it (CASCADE); their frames and kept models go once the
    deletion commits."""
    jobs = list(instance.jobs.all())

    def remove() -> None:
        for job in jobs:
            delete_job_frames(job)
            shutil.rmtree(job_model_dir(job), ignore_errors=True)

    if jobs:
        transaction.on_commit(remove)
