"""Sign-up and email verification. A new account stays inactive, and so cannot sign in,
until its owner clicks the emailed link: an address nobody has confirmed never receives
job emails or password resets, and nobody can hold an account in someone else's name."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse

from nerfsite.mail import send_templated_mail

from .models import PendingSignup
from .verification import uid_decode, uid_encode, verification_token

User = get_user_model()


@transaction.atomic
def user_sign_up(*, username: str, email: str, password: str,
                 absolute: Callable[[str], str]):
    """An inactive account; its verification email goes out once the row commits.
    `absolute` makes the link a full URL (the request's build_absolute_uri)."""
    user = User(username=username, email=email, is_active=False)
    user.set_password(password)
    user.full_clean()
    user.save()
    PendingSignup.objects.create(user=user)
    email_verification_send(user=user, absolute=absolute)
    return user


def email_verification_send(*, user, absolute: Callable[[str], str]) -> None:
    """Email the link that activates `user` (nothing for an active account)."""
    if user.is_active or not user.email or not PendingSignup.objects.filter(user=user).exists():
        return
    link = absolute(reverse("verify_email", kwargs={
        "uidb64": uid_encode(user), "token": verification_token.make_token(user)}))
    context = {"user": user, "link": link}
    transaction.on_commit(lambda: send_templated_mail("accounts/email/verify", context,
                                                      user.email))


@transaction.atomic
def user_verify_email(*, uidb64: str, token: str):
    """Activate the account the link names; the user, or None for a wrong, used or
    expired link."""
    pk = uid_decode(uidb64)
    user = User.objects.filter(pk=pk).first() if pk and pk.isdigit() else None
    if user is None or user.is_active or not verification_token.check_token(user, token):
        return None
    # Compare-and-set on the pending row: two clicks at once activate the account once,
    # and an account without one (deactivated by an admin) is never activated here.
    if not PendingSignup.objects.filter(user=user).delete()[0]:
        return None
    User.objects.filter(pk=user.pk).update(is_active=True)
    user.is_active = True
    return user


def unverified_user_for_email(email: str):
    """The newest account with this address still waiting for its confirmation, or None
    (an account an admin deactivated is not waiting for one)."""
    return (User.objects.filter(email__iexact=email.strip(), is_active=False,
                                pending_signup__isnull=False)
            .order_by("-date_joined").first())
