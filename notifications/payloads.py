"""The JSON an event sends: every URL absolute (SITE_URL), since the worker that builds it
has no request."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from pipeline.delivery.storage import MANIFEST
from pipeline.jobs import selectors as job_selectors
from pipeline.models import Job


def absolute(url: str) -> str:
    """A site path as a full URL; a URL that is full already (a bucket, a CDN) as is."""
    return urljoin(settings.SITE_URL + "/", url)


def envelope(*, event_id: str, type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": type, "created": timezone.now().isoformat(),
            "data": data}


def job_data(job: Job) -> dict[str, Any]:
    """The job, its product and, once it succeeded, where its spin and frames are."""
    product = job.product
    data: dict[str, Any] = {
        "job": {"id": str(job.pk), "status": job.status, "url": absolute(job.get_absolute_url()),
                "preset": job.preset, "error": job.error,
                "finished_at": job.finished_at.isoformat() if job.finished_at else None,
                "cost_usd": float(job.actual_cost) if job.actual_cost is not None else None,
                "gpu_type": job.gpu_type or None},
        "product": {"id": product.pk, "name": product.name, "sku": product.sku,
                    "url": absolute(product.get_absolute_url())},
        "spin": None,
    }
    manifest = job_selectors.finished_manifest(job)
    if manifest:
        urls = job_selectors.manifest_urls(job, manifest, absolute)
        data["spin"] = {
            "spin_json_url": absolute(reverse("pipeline:spin", args=[job.pk])),
            # Every frame's URL is in the manifest; listing 1440 of them here would make
            # the body larger than many receivers accept.
            "manifest_url": absolute(job_selectors.job_file_url(job, MANIFEST)),
            "frame_count": len(urls.frames), "width": urls.width, "height": urls.height,
            "rows": urls.rows,
            "frame_zips": [batch["url"] for batch in urls.batches],
            "first_frame_url": urls.frames[0]["url"] if urls.frames else None,
        }
    return data


def test_data(endpoint_url: str) -> dict[str, Any]:
    return {"message": "A test event from 360° spins: your endpoint receives our "
                       "webhooks.", "endpoint": endpoint_url}
