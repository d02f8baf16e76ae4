"""What a product's page shows of its jobs, so the products app never imports pipeline:
`{% load product_jobs %}{% product_jobs product as summary %}`, then the includes under
pipeline/product/ render it."""

from __future__ import annotations

from typing import Any

from django import template

from pipeline.display.job_display import product_showcase

register = template.Library()

RECENT_JOBS = 10


@register.simple_tag
def product_jobs(product) -> dict[str, Any]:
    """The newest spin, where the photos were taken, and the latest jobs."""
    return {**product_showcase(product), "jobs": product.jobs.all()[:RECENT_JOBS]}
