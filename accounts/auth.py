"""How the REST API knows who calls: a per-user token, or the browser's session."""

from __future__ import annotations

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from ninja.errors import AuthenticationError, HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from .tokens import user_for_token


@sensitive_variables("header")
def bearer_token(request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, whatever the scheme's case
    and the whitespace around it (RFC 9110 says the scheme is case-insensitive); None for
    another scheme or no header. The one reading of the header: the rate limit per token
    counts what authenticates, so `bEarer  nrf_…` is the same token as `Bearer nrf_…`."""
    header = request.headers.get("Authorization", "")
    parts = header.split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip()


class TokenAuth(HttpBearer):
    """`Authorization: Bearer nrf_…` with a token made on the API tokens page."""

    def __call__(self, request):
        # ninja's HttpBearer logs a header of another scheme whole (with DEBUG on), e.g.
        # `Token nrf_…`: a credential in the log. Another scheme falls to the session here,
        # unlogged.
        token = bearer_token(request)
        if token is None:
            return None
        return self.authenticate(request, token)

    @method_decorator(sensitive_variables("token"))
    def authenticate(self, request, token: str):
        user = user_for_token(token)
        if user is None:
            # A token was sent but is wrong or revoked: say so rather than trying the session.
            raise AuthenticationError(401, "The API token is invalid or has been revoked.")
        request.user = user
        return user


class SessionAuth(APIKeyCookie):
    """The signed-in browser session (the site's own pages call the API this way).

    Unlike ninja's SessionAuth, the CSRF check runs only when a user is signed in, so an
    anonymous call answers 401, not a CSRF error.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request):
        if not request.user.is_authenticated:
            return None
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS", "TRACE")
        if unsafe and check_csrf(request):
            raise HttpError(403, "CSRF check failed: send the X-CSRFToken header.")
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request, key):
        return request.user if request.user.is_authenticated else None


api_auth = [TokenAuth(), SessionAuth()]
