"""Fixtures shared by the site's tests."""

from __future__ import annotations

import pytest

OWNER_PASSWORD = "pw-shop-123"


@pytest.fixture
def owner(django_user_model):
    """The shop owner most tests act as; a module defines its own when it needs another."""
    return django_user_model.objects.create_user("shop", password=OWNER_PASSWORD)
