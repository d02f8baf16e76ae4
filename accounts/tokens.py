"""Creating, revoking and checking API tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from .models import ApiToken, token_digest

TOKEN_PREFIX = "nrf_"
# Writing last_used_at on every request would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def create_token(user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token, which is not kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name.strip()[:100] or "API token",
                                  prefix=token[:12], digest=token_digest(token))
    return row, token


def revoke_token(row: ApiToken) -> None:
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])


@sensitive_variables("token")
def user_for_token(token: str):
    """The active user a token belongs to, or None (unknown, revoked, inactive user)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (ApiToken.objects.select_related("user")
           .filter(digest=token_digest(token), revoked_at__isnull=True).first())
    if row is None or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user
