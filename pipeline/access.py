"""Who may see which jobs: the product's owner, and staff."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Job


def visible_jobs(user) -> QuerySet[Job]:
    qs = Job.objects.select_related("product", "product__owner")
    if not user.is_authenticated:
        return qs.none()
    return qs if user.is_staff else qs.filter(product__owner=user)
