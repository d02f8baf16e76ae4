from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage
from django.db import models
from django.urls import reverse

from nerfsite.files import photo_storage


def private_photo_storage() -> Storage:
    """The "photos" storage. Private: its files reach their owner only through
    products.views.photo_file, never by a storage URL."""
    return photo_storage


def photo_upload_to(photo: Photo, filename: str) -> str:
    # The stored name is generated: no user text becomes part of a path.
    suffix = PurePosixPath(filename).suffix.lower()[:6]
    return f"products/{photo.product_id}/{uuid.uuid4().hex}{suffix}"


class ProductQuerySet(models.QuerySet):
    def visible_to(self, user) -> ProductQuerySet:
        """A user sees their own products; staff see everyone's."""
        if not user.is_authenticated:
            return self.none()
        return self if user.is_staff else self.filter(owner=user)

    def with_summary(self) -> ProductQuerySet:
        """Photo count, cover photo, and what other apps add (SUMMARY_ANNOTATIONS: the
        latest job), in the same query (no N+1 in lists)."""
        cover = Photo.objects.filter(product=models.OuterRef("pk")).order_by("position", "id")
        extra: dict[str, Any] = {}
        for contribute in SUMMARY_ANNOTATIONS:
            extra.update(contribute())
        return self.select_related("owner").annotate(
            photo_count=models.Count("photos", distinct=True),
            cover_photo_id=models.Subquery(cover.values("pk")[:1]),
            **extra,
        )


# Callables returning annotations for ProductQuerySet.with_summary(). Apps that build on
# products register theirs in AppConfig.ready(), so this app never imports them.
SUMMARY_ANNOTATIONS: list[Callable[[], dict[str, Any]]] = []


class Product(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="products"
    )
    name = models.CharField(max_length=200)
    sku = models.CharField("SKU", max_length=64, help_text="Your own product code.")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "sku"], name="unique_sku_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    def get_absolute_url(self) -> str:
        return reverse("products:detail", args=[self.pk])

    @property
    def cover_thumbnail_url(self) -> str | None:
        """From `with_summary()`'s annotation."""
        photo_id = getattr(self, "cover_photo_id", None)
        return reverse("products:photo_thumbnail", args=[photo_id]) if photo_id else None


class Photo(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="photos")
    image = models.ImageField(
        upload_to=photo_upload_to, storage=private_photo_storage, width_field="width",
        height_field="height", max_length=255,
    )
    original_name = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "sha256"], name="unique_photo_per_product"),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.width}×{self.height})"

    @property
    def image_url(self) -> str:
        """The photo as stored, for its owner and staff (products.views.photo_file)."""
        return reverse("products:photo_image", args=[self.pk])

    @property
    def thumbnail_url(self) -> str:
        """A small JPEG beside the photo, made when it was uploaded (products.services)."""
        return reverse("products:photo_thumbnail", args=[self.pk])
