"""Requests Django refuses to read: too large, too many files or fields, a broken upload.

Django raises these while a view reads the body (RequestDataTooBig, TooManyFilesSent, …).
They are the client's mistake, so they answer 4xx with what to change, in the API's error
schema for the API (nerfsite.api) and for calls that want JSON, and as a page otherwise
(`bad_request`, the site's handler400); never a 500.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render

from nerfsite.api_common import error_response

# What the views reading a body may raise that is the request's fault.
CLIENT_ERRORS = (SuspiciousOperation, BadRequest, MultiPartParserError, UnreadablePostError)


def describe(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, detail) for a request Django could not read."""
    if isinstance(exc, RequestDataTooBig):
        mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1024 / 1024
        return 413, "too_large", (f"The request body is larger than {mb:g} MB. Send photos "
                                  "as multipart files, or fewer at a time.")
    if isinstance(exc, TooManyFilesSent):
        return 413, "too_large", (f"Too many files in one request: at most "
                                  f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES}. Send them in "
                                  "several requests, or as a .zip.")
    if isinstance(exc, TooManyFieldsSent):
        return 413, "too_large", (f"Too many form fields in one request: at most "
                                  f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}.")
    if isinstance(exc, DisallowedHost):
        return 400, "bad_request", "This server does not serve the site the Host header names."
    if isinstance(exc, MultiPartParserError) and "header size" in str(exc):
        # Django reads at most 1 KB of each part's headers: a file name near 1000
        # characters (a path pasted as a name, say) overflows them.
        return 400, "bad_request", ("A file name in the upload is too long: rename the file "
                                    "to fewer than 255 characters and send it again.")
    if isinstance(exc, MultiPartParserError | UnreadablePostError):
        return 400, "bad_request", ("The upload could not be read: send a well-formed "
                                    "multipart/form-data body.")
    return 400, "bad_request", "The request could not be read."


def bad_request(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    """handler400: Django's own 400 (SuspiciousOperation, BadRequest, …) with the reason
    and the right status, as JSON for callers that want it and as a page for people."""
    status, code, detail = describe(exception) if exception is not None else (
        400, "bad_request", "The request could not be read.")
    if "application/json" in request.headers.get("Accept", "") or request.path.startswith(
            "/api/"):
        return error_response(status, code, detail)
    return render(request, "400.html", {"detail": detail, "status": status}, status=status)
