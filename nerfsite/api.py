"""The REST API root. Each app adds its own router; docs at /api/docs.

Every call is authenticated (a per-user token or the browser session, see accounts.auth),
and every error, whatever raised it, answers with the one `Error` schema below.
"""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from accounts.auth import api_auth
from nerfsite import client_errors
from nerfsite.api_common import Error, error_response
from nerfsite.throttles import (
    AddressThrottle,
    TokenThrottle,
    count_failed_auth,
    throttled_response,
)
from pipeline.errors import JobError
from products.services import ProductError

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="360° spins API",
    version="1.0.0",
    description=(
        "Create products, upload photos, run jobs and fetch transparent 360° frames.\n\n"
        "Authenticate with `Authorization: Bearer <token>` (make a token on the API tokens "
        "page) or, from the site's own pages, the signed-in session plus `X-CSRFToken`. "
        "Errors always answer `{code, detail, errors}`; another user's objects answer 404."
    ),
    urls_namespace="api",
    auth=api_auth,
    # Run after auth: per calling address, and per token (or signed-in user).
    throttle=[AddressThrottle(), TokenThrottle()],
)


@api.get("/health", tags=["meta"], summary="The API answers", auth=None,
         response={200: dict[str, str]})
def health(request) -> dict[str, str]:
    return {"status": "ok"}


# --- One error schema everywhere ------------------------------------------------------
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large",
         422: "invalid_request", 429: "throttled"}


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
              for e in exc.errors]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"][1:] or first["loc"]) or "request"
    return error_response(422, "invalid_request",
                          f"The request is not valid: {where}: {first['msg']}.", errors)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # The same answer for "does not exist" and "belongs to someone else".
    return error_response(404, "not_found", "Not found.")


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    # Every refused call counts against its address; past the limit, guessing answers 429.
    try:
        count_failed_auth(request)
    except Throttled as throttled:
        return on_throttled(request, throttled)
    detail = exc.message if exc.message != "Unauthorized" else (
        "Sign in, or send an API token as `Authorization: Bearer <token>`.")
    return error_response(401, "unauthorized", detail)


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error_response(exc.status_code, CODES.get(exc.status_code, "error"), exc.message,
                          getattr(exc, "errors", None))


@api.exception_handler(Throttled)
def on_throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    return throttled_response(exc)


def on_unreadable_request(request: HttpRequest, exc: Exception) -> HttpResponse:
    return error_response(*client_errors.describe(exc))


for unreadable in client_errors.CLIENT_ERRORS:
    api.add_exception_handler(unreadable, on_unreadable_request)


@api.exception_handler(JobError)
def on_job_error(request: HttpRequest, exc: JobError) -> HttpResponse:
    return error_response(409, "job_refused", str(exc))


@api.exception_handler(ProductError)
def on_product_error(request: HttpRequest, exc: ProductError) -> HttpResponse:
    return error_response(409, "conflict", str(exc))


@api.exception_handler(Exception)
def on_server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("API error on %s %s", request.method, request.path)
    return error_response(500, "server_error",
                          "Something went wrong on our side; it has been logged. "
                          "Try again, and contact support if it persists.")


def mount_routers() -> None:
    from notifications.api import router as webhooks_router
    from pipeline.api import jobs_router, nerf_router, usage_router
    from products.api import router as products_router

    api.add_router("/products", products_router)
    api.add_router("/jobs", jobs_router)
    api.add_router("/nerf", nerf_router)
    api.add_router("/usage", usage_router)
    api.add_router("/webhooks", webhooks_router)


mount_routers()

__all__ = ["api", "Error"]
