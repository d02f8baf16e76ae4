"""Signals other apps use to take part in products' life without products importing them."""

from django.dispatch import Signal

# Sent inside the deleting transaction, before a photo (sender=Photo) or a product
# (sender=Product) is deleted, with `product` and `instance`. A receiver refuses by raising
# products.services.ProductError with a message for the owner.
deletion_requested = Signal()
