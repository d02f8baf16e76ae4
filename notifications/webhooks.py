"""Sending one webhook: the URL's rules, the signature, and a POST that reaches only
public addresses and follows no redirect. No database here."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

SIGNATURE_HEADER = "Spin-Signature"
USER_AGENT = "360-spins-webhooks/1"
# Enough of an answer to know it arrived; the body itself is not kept.
MAX_RESPONSE_BYTES = 64 * 1024
# IPv6 ranges that reach IPv4 hosts or networks Python's is_global does not flag (as of
# 3.11): the embedded IPv4 address of NAT64's well-known prefix and of 6to4 is checked;
# the rest are refused outright (nothing public is reached through them).
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SIXTO4 = ipaddress.IPv6Network("2002::/16")
REFUSED_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",            # IPv4-compatible (::a.b.c.d), deprecated; also :: and ::1
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b:1::/48",   # NAT64 for local use
    "fec0::/10",        # site-local, deprecated but still routed inside some networks
))


class UnsafeUrl(ValueError):
    """The URL may not be called: its scheme, or an address it resolves to."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe signs: the time is
    signed too, so a receiver can refuse an old message replayed later."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL without credentials in it, or UnsafeUrl."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeUrl("Use an http:// or https:// URL with a host name.")
    try:  # Django's rule (the model field's): spaces, empty or overlong labels, bad IDNs
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise UnsafeUrl("This is not a valid URL: check the host name, and percent-encode "
                        "spaces and other special characters in the path.") from None
    if parts.username or parts.password:
        raise UnsafeUrl("Leave user names and passwords out of the URL; verify the "
                        f"{SIGNATURE_HEADER} header instead.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl("The URL's port is not a number from 1 to 65535.") from exc
    return parts.scheme, parts.hostname, port


def is_internal(address: str) -> bool:
    """Loopback, private, link-local (the cloud metadata address 169.254.169.254), shared,
    multicast, reserved or unspecified: anything that is not a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in REFUSED_V6):
            return True
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip in SIXTO4:
            ip = ip.sixtofour
    return not ip.is_global or ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to; UnsafeUrl when any is internal (unless the
    operator allows them) or when none is found."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(f"{host} could not be resolved ({exc.strerror or exc}).") from exc
    except UnicodeError:  # the idna codec: a label too long or empty once encoded
        raise UnsafeUrl(f"{host} is not a valid host name.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if is_internal(address):
                raise UnsafeUrl(f"{host} resolves to {address}, an internal address; "
                                "webhooks may only call public addresses.")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, not to whatever the name resolves to a
    moment later (DNS rebinding); the Host header keeps the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, as for any HTTPS call.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _Watchdog:
    """Shuts the connection's socket down after `seconds`, ending whatever read or write
    is under way (the call then fails)."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.connection = connection
        self.fired = False
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True
        self.timer.start()

    def fire(self) -> None:
        self.fired = True
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self.timer.cancel()


@dataclass(frozen=True)
class Result:
    status_code: int | None
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, body: bytes, headers: dict[str, str]) -> Result:
    """POST `body` to `url` once. Any 2xx is a success; a redirect is a failure (it is not
    followed: its target was never checked)."""
    started = time.monotonic()

    def result(status: int | None, error: str) -> Result:
        return Result(status, error[:500], round((time.monotonic() - started) * 1000))

    try:
        scheme, host, port = check_url(url)
        address = resolve(host, port)[0]
    except UnsafeUrl as exc:
        return result(None, str(exc))
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    limit = settings.WEBHOOK_TIMEOUT_SECONDS
    connection = kind(host, port, address, limit)
    # The socket's timeout bounds each read, not the whole answer: a receiver that sends a
    # byte every few seconds would hold the worker (everyone's jobs, videos and webhooks
    # wait behind it) for as long as it likes. The watchdog ends the call at the limit.
    watchdog = _Watchdog(connection, limit)
    try:
        connection.request("POST", target, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
    except (OSError, http.client.HTTPException) as exc:  # refused, timed out, TLS, garbage
        if watchdog.fired:
            return result(None, f"TimeoutError: no complete answer within {limit} s")
        return result(None, f"{exc.__class__.__name__}: {exc}" if str(exc)
                      else exc.__class__.__name__)
    finally:
        watchdog.cancel()
        connection.close()
    if watchdog.fired:  # cut short: what was read may look like an answer, but is not one
        return result(None, f"TimeoutError: no complete answer within {limit} s")
    status = response.status
    if 300 <= status < 400:
        return result(status, f"HTTP {status}: redirects are not followed; use the final "
                              "URL.")
    return result(status, "" if 200 <= status < 300 else f"HTTP {status} {response.reason}")
