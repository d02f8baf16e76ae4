"""Create the first admin account when the site has no user at all.

In development a password is generated and printed once. In production nothing secret is
ever printed (the output ends up in the platform's logs): the password must come from
DJANGO_SUPERUSER_PASSWORD, or the operator runs `manage.py createsuperuser`."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create a first superuser when there is no user. Takes DJANGO_SUPERUSER_USERNAME and "
        "DJANGO_SUPERUSER_PASSWORD from the environment, else makes 'admin' with a generated "
        "password and prints it once."
    )

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        if User.objects.exists():
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated and settings.PRODUCTION:
            self.stdout.write(
                "No user yet. Create the first admin with `manage.py createsuperuser`, or set "
                "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD and run again.")
            return
        if generated:
            password = secrets.token_urlsafe(12)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Created the admin account '{username}'."))
        if generated:
            self.stdout.write(
                f"  username: {username}\n  password: {password}\n"
                "  This password is shown only once: note it now, or change it with "
                f"`.venv/bin/python manage.py changepassword {username}`."
            )
