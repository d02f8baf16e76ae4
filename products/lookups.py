"""The pages' and the API's lookups of one product or photo: 404 for what the user may not see.
Apart from the selectors, which the worker imports too: the worker loads no HTTP code
(tests/site/test_architecture.py)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from .models import Photo, Product


def product_get_visible(*, user, pk: int, summary: bool = False) -> Product:
    """The user's product (any product for staff); 404 for everyone else's."""
    qs = Product.objects.visible_to(user)
    return get_object_or_404(qs.with_summary() if summary else qs, pk=pk)


def photo_get_visible(*, user, pk: int) -> Photo:
    """A photo of the user's products (any for staff); 404 for everyone else, anonymous
    visitors included: photos are the owner's private data."""
    return get_object_or_404(Photo.objects.filter(product__in=Product.objects.visible_to(user)),
                             pk=pk)


def photo_get(*, product: Product, pk: int) -> Photo:
    return get_object_or_404(Photo, pk=pk, product=product)
