"""How the REST API knows who calls: a per-user token, or the browser's session."""

from __future__ import annotations

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from ninja.errors import AuthenticationError, HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from .tokens import user_for_token


class TokenAuth(HttpBearer):
    """`Authorization: Bearer nrf_…` with a token made on the API tokens page."""

    def __call__(self, request):
        # ninja's HttpBearer logs a header of another scheme whole (with DEBUG on), e.g.
        # `Token nrf_…`: a credential in the log. Another scheme falls to the session here,
        # unlogged.
        scheme, _, token = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme:
            return None
        return self.authenticate(request, token)

    @method_decorator(sensitive_variables("token"))
    def authenticate(self, request, token: str):
        user = user_for_token(token.strip())
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
