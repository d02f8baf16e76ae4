"""The first admin account: generated and shown once in development; in production only
from the environment, so no password ever reaches the platform's logs."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db
User = get_user_model()


def ensure_admin() -> str:
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_development_generates_a_password_and_shows_it_once(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    out = ensure_admin()
    admin = User.objects.get(username="admin")
    password = out.split("password: ")[1].split()[0]
    assert admin.is_superuser and admin.check_password(password)
    assert ensure_admin() == ""  # a site with a user is left alone


def test_production_never_prints_a_password(settings, monkeypatch):
    settings.PRODUCTION = True
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    out = ensure_admin()
    assert "createsuperuser" in out and "password:" not in out
    assert not User.objects.exists()
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "owner")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-Long-secret-2026")
    out = ensure_admin()
    assert "a-Long-secret-2026" not in out
    assert User.objects.get(username="owner").check_password("a-Long-secret-2026")
