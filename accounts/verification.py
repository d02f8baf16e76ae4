"""Email verification links: Django's password-reset token scheme (HMAC of the user's
state and a timestamp, valid for PASSWORD_RESET_TIMEOUT) with its own salt. The token
covers `is_active`, so a link works once: after it has activated the account it is void."""

from __future__ import annotations

from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "accounts.verification.EmailVerificationTokenGenerator"

    def _make_hash_value(self, user, timestamp: int) -> str:
        return f"{user.pk}{user.is_active}{user.email}{timestamp}"


verification_token = EmailVerificationTokenGenerator()


def uid_encode(user) -> str:
    return urlsafe_base64_encode(force_bytes(user.pk))


def uid_decode(uidb64: str) -> str | None:
    try:
        return force_str(urlsafe_base64_decode(uidb64))
    except (TypeError, ValueError, OverflowError):
        return None
