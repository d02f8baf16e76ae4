"""Emails written as templates: `<prefix>_subject.txt` and `<prefix>_body.txt`."""

from __future__ import annotations

from typing import Any

from django.core.mail import send_mail
from django.template.loader import render_to_string


def send_templated_mail(prefix: str, context: dict[str, Any], to: str) -> None:
    """Render both templates with `context` and send them to `to` from DEFAULT_FROM_EMAIL.
    A subject is one line, whatever the template's line breaks."""
    subject = " ".join(render_to_string(f"{prefix}_subject.txt", context).split())
    send_mail(subject, render_to_string(f"{prefix}_body.txt", context), None, [to])
