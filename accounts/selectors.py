"""Reads about accounts: who is waiting for a confirmation, who a reset reaches."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from .verification import uid_decode, verification_token

User = get_user_model()


def unverified_users_for_email(email: str) -> list:
    """The accounts with this address still waiting for their confirmation, newest first
    (an account an admin deactivated is not waiting for one). More than one when someone
    else signed up with the address too: each link names its username."""
    return list(User.objects.filter(email__iexact=email.strip(), is_active=False,
                                    pending_signup__isnull=False)
                .order_by("-date_joined")[:5])


def users_for_password_reset(email: str) -> list:
    """Who a reset link for `email` goes to: active accounts and accounts waiting for
    their confirmation (setting a password through the link confirms the address); never
    an account an admin deactivated."""
    users = User.objects.filter(email__iexact=email.strip())
    return [user for user in users.select_related("pending_signup")
            if user.has_usable_password()
            and (user.is_active or hasattr(user, "pending_signup"))]


def pending_user_for_link(*, uidb64: str, token: str):
    """The unconfirmed account a verification link names, or None for a wrong, used or
    expired link."""
    pk = uid_decode(uidb64)
    user = (User.objects.filter(pk=pk, pending_signup__isnull=False).first()
            if pk and pk.isdigit() else None)
    if user is None or user.is_active or not verification_token.check_token(user, token):
        return None
    return user
