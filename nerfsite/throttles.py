"""Rate limits: API calls per token and per address, failed API sign-ins per address, and
photo uploads per user.

All of them are django-ninja's sliding-window throttle (state in the "throttles" cache), with
the rate read from a setting at each call rather than fixed at import, so a deployment (or
a test, through override_settings) changes it without code. A rate is ninja's
"N/period" ("600/min", "20/10min", "1000/h"); an empty one turns that limit off.

Failed sign-ins on the pages are django-axes' business (settings.AXES_*); it finds the
caller's address through `client_address` below, the same rule as these throttles.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, JsonResponse
from ninja.errors import Throttled
from ninja.throttling import BaseThrottle, SimpleRateThrottle

from accounts.auth import bearer_token
from nerfsite.api_common import error_response


def client_address(request: HttpRequest) -> str | None:
    """The caller's IP: REMOTE_ADDR, or the address NUM_PROXIES trusted proxies put in
    X-Forwarded-For (ninja's rule; the header alone is not trusted, it is easy to forge).
    None for a request made in-process (force_login), which has neither."""
    return BaseThrottle().get_ident(request) or None


class SettingRateThrottle(SimpleRateThrottle):
    """A ninja throttle whose rate is the setting named `rate_setting`."""

    rate_setting: str = ""

    def __init__(self) -> None:  # the rate is read per call (see _load_rate), not here
        self.rate = None
        self._calls = threading.local()

    @property
    def cache(self):  # looked up per call: tests give each test counters of its own
        return caches["throttles"]

    def configured_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def _load_rate(self) -> bool:
        """Read the rate; False when the setting turns this limit off."""
        self.rate = self.configured_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return self.rate is not None

    def allow_request(self, request: HttpRequest) -> bool:
        # ninja keeps one throttle per operation for every thread, and the base class keeps
        # each call's key and history on the instance: each call gets its own copy.
        call = copy.copy(self)
        self._calls.current = call
        return not call._load_rate() or SimpleRateThrottle.allow_request(call, request)

    def wait(self) -> float | None:
        """Seconds before this thread's last refused call would be allowed."""
        call = getattr(self._calls, "current", None)
        return SimpleRateThrottle.wait(call) if call is not None else None

    def get_ident(self, request: HttpRequest) -> str:
        return client_address(request) or "unknown"

    def key_for(self, ident: str) -> str:
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def get_cache_key(self, request: HttpRequest) -> str | None:
        """Per calling address, unless a subclass counts per token or user."""
        return self.key_for(self.get_ident(request))


class AddressThrottle(SettingRateThrottle):
    """Every API call, per calling address."""

    scope = "api_address"
    rate_setting = "API_RATE_PER_ADDRESS"


class TokenThrottle(SettingRateThrottle):
    """Every authenticated API call, per token (per user for the site's own session)."""

    scope = "api_token"
    rate_setting = "API_RATE_PER_TOKEN"

    def get_cache_key(self, request: HttpRequest) -> str | None:
        token = bearer_token(request)
        if token:  # a valid token, or auth would have refused the call: key on its hash
            return self.key_for(hashlib.sha256(token.encode()).hexdigest())
        user = getattr(request, "auth", None)
        return self.key_for(f"user-{user.pk}") if user is not None else None


class FailedAuthThrottle(SettingRateThrottle):
    """API calls refused as unauthenticated (a wrong, revoked or missing token), per
    address. Counted only when a call fails: past the limit such calls answer 429, so
    guessing tokens is slow; calls with a valid token are not affected."""

    scope = "api_auth_failures"
    rate_setting = "API_AUTH_FAILURES_PER_ADDRESS"


class AccountFormAddressThrottle(SettingRateThrottle):
    """Sign-ups, password resets and confirmation resends (each sends an email), per
    calling address, the three together."""

    scope = "account_forms"
    rate_setting = "ACCOUNT_EMAILS_PER_ADDRESS"


class AccountFormRecipientThrottle(SettingRateThrottle):
    """The same forms per email address asked for, whoever asks: no flood of one inbox
    from many addresses. Counted for every address typed, taken or not, so a refusal
    tells nothing about who has an account."""

    scope = "account_recipient"
    rate_setting = "ACCOUNT_EMAILS_PER_RECIPIENT"

    def __init__(self, recipient: str) -> None:
        super().__init__()
        self.recipient = recipient

    def get_cache_key(self, request: HttpRequest) -> str:
        return self.key_for(hashlib.sha256(self.recipient.strip().lower().encode())
                            .hexdigest())


def count_account_email(request: HttpRequest, recipient: str) -> None:
    """Count one sign-up, reset or resend for `recipient` from this caller; raise
    Throttled when either limit is reached."""
    for throttle in (AccountFormAddressThrottle(), AccountFormRecipientThrottle(recipient)):
        if not throttle.allow_request(request):
            raise Throttled(wait=throttle.wait())


def count_failed_auth(request: HttpRequest) -> None:
    """Count a call refused as unauthenticated against its address; raise Throttled once
    the address is past API_AUTH_FAILURES_PER_ADDRESS. The API and the photo files (which
    take API tokens too) share the one count, so guessing tokens is slow on both."""
    throttle = FailedAuthThrottle()
    if not throttle.allow_request(request):
        raise Throttled(wait=throttle.wait())


class UploadThrottle(SettingRateThrottle):
    """Files uploaded per user per hour, on the pages and through the API alike."""

    scope = "uploads"
    rate_setting = "UPLOADS_PER_HOUR"

    def configured_rate(self) -> str | None:
        per_hour = getattr(settings, self.rate_setting)
        return f"{per_hour}/h" if per_hour else None

    def get_cache_key(self, request: HttpRequest) -> str:
        return self.key_for(f"user-{request.user.pk}")

    def take(self, request: HttpRequest, files: int) -> None:
        """Count `files` uploads; raise Throttled (with the seconds to wait) when they do
        not all fit in what is left of the window, counting none of them."""
        if files <= 0 or not self._load_rate():
            return
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        if len(self.history) + files > self.num_requests:
            # The oldest uploads that must leave the window before these fit.
            needed = len(self.history) + files - self.num_requests
            oldest = sorted(self.history)[:needed] if needed <= len(self.history) else []
            wait = (oldest[-1] + self.duration - self.now) if oldest else self.duration
            raise Throttled(wait=math.ceil(max(wait, 1)))
        self.history = [self.now] * files + self.history
        self.cache.set(self.key, self.history, self.duration)


def throttled_response(exc: Throttled) -> JsonResponse:
    """429 in the API's error schema, with Retry-After in whole seconds (RFC 9110)."""
    seconds = str(math.ceil(exc.wait)) if exc.wait else "60"
    response = error_response(429, "throttled",
                              f"Too many requests: try again in {seconds} seconds.")
    response["Retry-After"] = seconds
    return response
