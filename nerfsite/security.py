"""The Content-Security-Policy (settings.CONTENT_SECURITY_POLICY, django-csp), with the
origin the frames come from when it is not this site's."""

from __future__ import annotations

from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

from nerfsite.files import frame_origin


class FrameOriginCSPMiddleware(CSPMiddleware):
    """django-csp's middleware; img-src and media-src also admit the frames' bucket or
    CDN, so the site's own viewer shows frames stored there, and the job page plays the
    turntable videos stored beside them."""

    def get_policy_parts(self, request: HttpRequest, response: HttpResponseBase,
                         report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        origin = frame_origin()
        if origin:
            update = dict(parts.update or {})
            for directive in ("img-src", "media-src"):
                update[directive] = [*update.get(directive, []), origin]
            parts.update = update
        return parts
