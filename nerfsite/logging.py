"""A console formatter that writes one logfmt line per record (time, level, logger, msg),
and what keeps credentials out of log records and error reports."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from django.views.debug import SafeExceptionReporterFilter

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=… logger=… msg="…" key=value …`: easy to read and to grep or parse."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Extras with plain values only: Django attaches objects (the request, its socket)
        # whose repr is noise on a log line.
        fields.update(
            {
                k: v
                for k, v in vars(record).items()
                if k not in _RESERVED and isinstance(v, str | int | float | bool)
            }
        )
        if record.exc_info or record.exc_text:
            # exc_text first: RedactSecrets leaves the traceback there, redacted.
            fields["exc"] = record.exc_text or self.formatException(record.exc_info)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


# --- No credential in a log line or an error report -----------------------------------
# A credential's value after its name: `Authorization: Bearer …`, `'HTTP_COOKIE': '…'`,
# `password=…`, `sessionid=…`; and an API token wherever it appears.
_NAMED_SECRET = re.compile(
    r"(?i)((?:authorization|cookie|password\w*|passwd|secret\w*|api[_-]?key|sessionid|"
    r"csrftoken|csrfmiddlewaretoken|x[_-]csrftoken)['\"]?\s*[:=]\s*['\"]?)"
    r"((?:bearer|token|basic)\s+)?[^\s&;,'\"}]+")
_API_TOKEN = re.compile(r"nrf_[A-Za-z0-9_\-]{6,}")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with every credential value it shows replaced by [redacted]."""
    text = _NAMED_SECRET.sub(lambda m: m.group(1) + (m.group(2) or "") + REDACTED, text)
    return _API_TOKEN.sub("nrf_" + REDACTED, text)


class RedactSecrets(logging.Filter):
    """On every handler: the message, plain extras and traceback text of each record, with
    credentials redacted, whichever library wrote it (ninja logs a whole Authorization
    header with DEBUG on; a query string or an exception may carry a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        for name, value in list(vars(record).items()):
            if name not in _RESERVED and isinstance(value, str):
                setattr(record, name, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class SafeReporterFilter(SafeExceptionReporterFilter):
    """Error reports (the 500 e-mail, the DEBUG page's settings and request): Django's
    filter, which hides settings and headers named like API|AUTH|TOKEN|KEY|SECRET|PASS,
    plus cookies, sessions and CSRF tokens, and local variables named like any of them."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|SESSION|CSRF", flags=re.I)

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleansed_substitute if self.hidden_settings.search(name)
                 else value) for name, value in variables]
