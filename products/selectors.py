"""Reads of products and photos: who sees what, search, and the photos a job can use."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Photo, Product


def product_visible_list(*, user, search: str = "") -> QuerySet[Product]:
    """The user's products (staff: everyone's) with their summary, newest first; `search`
    matches name, SKU and description."""
    qs = Product.objects.visible_to(user).with_summary()
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(sku__icontains=search)
                       | Q(description__icontains=search))
    # Aggregating querysets drop Meta.ordering; pages need a stable order.
    return qs.order_by("-created_at", "-id")


def product_usable_photos(*, product: Product) -> list[Photo]:
    """The product's photos whose files are on disk, in capture order."""
    return [p for p in product.photos.order_by("position", "id") if p.image and
            p.image.storage.exists(p.image.name)]
