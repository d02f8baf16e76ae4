"""Sign-up, email verification and password changes.

Whoever controls a mailbox decides who owns the account of that address:
- A new account stays inactive, and so cannot sign in, until the link emailed to its
  address is opened and the password chosen at sign-up typed again there. Someone who
  signs up with another person's address never gets the link; and the person who does,
  not knowing that password, cannot switch the stranger's account on by clicking it.
- An unconfirmed account holds nothing: its address can sign up again, and the first
  account confirmed (by its link, or by a password reset, which reaches unconfirmed
  accounts too) takes the address; the other unconfirmed ones with it are deleted.
- Sign-up answers the same whatever is taken. When the address already has an account,
  or the username is taken, nothing is made and the address is told why by email.
A password set or changed revokes the user's API tokens: whoever held the old password
may have made some.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from nerfsite.mail import send_templated_mail

from .models import ApiToken, PendingSignup
from .verification import uid_encode, verification_token

User = get_user_model()


@transaction.atomic
def user_sign_up(*, username: str, email: str, password: str,
                 absolute: Callable[[str], str]):
    """An inactive account and its verification email (sent once the row commits); or,
    when the address already has an account or the username is taken, no account and an
    email to the address that says so. The new user, or None. `absolute` makes links full
    URLs (the request's build_absolute_uri)."""
    email = email.strip()
    # Hashed whatever happens next: the hasher's time (a large share of the answer's)
    # would otherwise tell a new address from a taken one.
    hashed = make_password(password)
    login_url = absolute(reverse("login"))
    owner = (User.objects.filter(email__iexact=email, pending_signup__isnull=True)
             .order_by("pk").first())
    if owner is not None:
        _mail_on_commit("accounts/email/signup_exists", {
            "user": owner, "login_url": login_url,
            "reset_url": absolute(reverse("password_reset"))}, owner.email)
        return None
    _delete_expired_signups(username=username)
    if User.objects.filter(username__iexact=username).exists():
        _mail_on_commit("accounts/email/username_taken", {
            "username": username, "signup_url": absolute(reverse("signup")),
            "login_url": login_url}, email)
        return None
    user = User(username=username, email=email, is_active=False, password=hashed)
    user.full_clean()
    user.save()
    PendingSignup.objects.create(user=user)
    email_verification_send(user=user, absolute=absolute)
    return user


def _delete_expired_signups(*, username: str) -> None:
    """An account never confirmed within PASSWORD_RESET_TIMEOUT (its link has expired)
    gives its username back."""
    cutoff = timezone.now() - timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    User.objects.filter(username__iexact=username, is_active=False,
                        pending_signup__created_at__lt=cutoff).delete()


def _mail_on_commit(prefix: str, context: dict, to: str) -> None:
    transaction.on_commit(lambda: send_templated_mail(prefix, context, to))


def email_verification_send(*, user, absolute: Callable[[str], str]) -> None:
    """Email the link that confirms `user`'s address (nothing for an active account)."""
    if user.is_active or not user.email or not PendingSignup.objects.filter(user=user).exists():
        return
    link = absolute(reverse("verify_email", kwargs={
        "uidb64": uid_encode(user), "token": verification_token.make_token(user)}))
    _mail_on_commit("accounts/email/verify", {"user": user, "link": link}, user.email)


@transaction.atomic
def user_verify_email(*, user) -> bool:
    """Activate `user`, whose link and password the caller has checked; False when it is
    not waiting for a confirmation any more (confirmed meanwhile, or deactivated by an
    admin: only accounts with a pending row are ever activated here)."""
    # Compare-and-set on the pending row: two confirmations at once activate it once.
    if not PendingSignup.objects.filter(user=user).delete()[0]:
        return False
    _activate(user)
    return True


def _activate(user) -> None:
    """The account takes its address: other unconfirmed accounts with it are deleted
    (they never signed in, so they hold nothing)."""
    User.objects.filter(pk=user.pk).update(is_active=True)
    user.is_active = True
    (User.objects.filter(email__iexact=user.email, is_active=False,
                         pending_signup__isnull=False)
     .exclude(pk=user.pk).delete())


@transaction.atomic
def user_password_set(*, user) -> int:
    """After `user`'s password was set (a reset link) or changed: revoke their API tokens,
    and activate an unconfirmed account, since the reset link reached its mailbox. The
    number of tokens revoked."""
    if PendingSignup.objects.filter(user=user).delete()[0]:
        _activate(user)
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
