"""Per-user API tokens. Only a SHA-256 digest of each token is stored; the token itself is
shown once, when it is created."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


def token_digest(token: str) -> str:
    # Tokens are 256 random bits, so a plain hash cannot be brute-forced; no salt needed,
    # and a digest can be looked up by index.
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100, help_text="Where the token is used, e.g. “shop backend”."
    )
    prefix = models.CharField(
        max_length=12, help_text="The token's first characters, to recognise it."
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PendingSignup(models.Model):
    """An account made by sign-up whose email address is not confirmed yet. Only these are
    activated by a confirmation link: an account an admin deactivated has none, so no link
    (nor a resent one) can bring it back."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pending_signup"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} (email not confirmed)"
