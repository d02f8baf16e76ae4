"""Byte ranges (RFC 9110 §14) for files the site serves itself.

Safari plays a <video> only from a server that answers `Range: bytes=0-1` with 206, and a
download of a large zip batch resumes only with ranges; Django's static `serve` answers
every request with the whole file. One range per request, which is what browsers send for
media and downloads; a multi-range request gets the whole file, as the RFC allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024
# Headers of the whole file's response that describe the part as well.
KEPT_HEADERS = ("Content-Type", "Last-Modified", "ETag", "Content-Encoding")
# Any position with more digits lies past every file; int() of thousands of digits is slow
# and, past 4300, a ValueError (Python's limit on str-to-int conversion).
MAX_DIGITS = 18


def with_byte_ranges(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """`response` (a 200 FileResponse of a seekable file), or the part of it the request's
    Range header asks for: 206 with Content-Range, or 416 when the range lies past the end.
    Either way it says that ranges are accepted."""
    if not isinstance(response, FileResponse) or response.status_code != 200:
        return response
    response["Accept-Ranges"] = "bytes"
    match = SINGLE_RANGE.match(request.headers.get("Range", "").strip())
    size = int(response.get("Content-Length", -1))
    if request.method != "GET" or not match or size < 0 or match.groups() == ("", ""):
        return response
    first, last = (_position(group) for group in match.groups())
    if first is not None:
        start, end = first, min(last, size - 1) if last is not None else size - 1
    else:  # "bytes=-N": the last N bytes
        start, end = max(0, size - last), size - 1
    if start >= size or start > end:
        response.close()
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        refused["Accept-Ranges"] = "bytes"
        return refused
    part = StreamingHttpResponse(_read(response.file_to_stream, start, end - start + 1),
                                 status=206)
    for name in KEPT_HEADERS:
        if name in response:
            part[name] = response[name]
    part["Content-Range"] = f"bytes {start}-{end}/{size}"
    part["Content-Length"] = str(end - start + 1)
    part["Accept-Ranges"] = "bytes"
    return part


def _position(digits: str) -> int | None:
    """A byte position from the header; None when absent. A number too long to be any
    file's position stands for "past the end" (10**MAX_DIGITS)."""
    if not digits:
        return None
    return int(digits) if len(digits) <= MAX_DIGITS else 10 ** MAX_DIGITS


def _read(file: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """`length` bytes of `file` from `start`, in chunks; the file is closed at the end, or
    when the response is closed early (Django closes the iterator)."""
    try:
        file.seek(start)
        while length > 0:
            chunk = file.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        file.close()
