"""Pieces every API router shares: the error schema, pagination and safe input types."""

from __future__ import annotations

from typing import Annotated, Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from ninja import Field, Path, Schema
from ninja.pagination import PaginationBase
from pydantic import StringConstraints

# Database ids are 64-bit; a larger number in a path would overflow the query itself.
MAX_DB_ID = 2**63 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]

# No NUL characters: PostgreSQL cannot store them, and no product name needs one.
NO_NUL = r"^[^\x00]*$"


def text(min_length: int = 0, max_length: int = 200) -> Any:
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length,
                                            max_length=max_length, pattern=NO_NUL)]


class FieldError(Schema):
    loc: list[str] = Field(description="Where the problem is, e.g. [\"body\", \"name\"].")
    msg: str


class Error(Schema):
    """Every error answer, whatever its status."""

    code: str = Field(description="Stable and machine-readable: not_found, unauthorized, "
                                  "invalid_request, job_refused, conflict, too_large, "
                                  "throttled, server_error, …")
    detail: str = Field(description="What went wrong and what to do, for people.")
    errors: list[FieldError] = Field(default_factory=list,
                                     description="Per-field problems of a 422 answer.")


# Added to every operation's documented responses: any call may be refused for its
# credentials, its size (413) or its rate (429, with Retry-After).
ERRORS: dict[int, type[Schema]] = {401: Error, 403: Error, 404: Error, 413: Error,
                                   422: Error, 429: Error, 500: Error}


def responses(ok: dict[int, Any] | None = None, *extra: int) -> dict[int, Any]:
    """Document an operation's answers: its own plus the shared errors (and `extra`)."""
    return {**(ok or {}), **ERRORS, **{status: Error for status in extra}}


def error_response(status: int, code: str, detail: str,
                   errors: list[dict[str, Any]] | None = None) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, "errors": errors or []},
                        status=status, json_dumps_params={"ensure_ascii": False})


class Pages(PaginationBase):
    """`?page=1&page_size=50`; answers `{items, count, page, page_size}`."""

    class Input(Schema):
        page: int = Field(1, ge=1, le=100_000)
        page_size: int = Field(50, ge=1, le=200)

    class Output(Schema):
        items: list[Any]
        count: int
        page: int
        page_size: int

    items_attribute = "items"

    def paginate_queryset(self, queryset: QuerySet, pagination: Input,
                          request: HttpRequest, **params: Any) -> dict[str, Any]:
        offset = (pagination.page - 1) * pagination.page_size
        return {"items": queryset[offset:offset + pagination.page_size],
                "count": queryset.count(), "page": pagination.page,
                "page_size": pagination.page_size}
