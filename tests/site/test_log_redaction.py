"""No credential reaches a log or an error report: a real server with DEBUG on, logging
as configured, is sent tokens, cookies and passwords; its output holds none of them."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter

from accounts.tokens import create_token
from tests.conftest import ROOT, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, **headers: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def debug_server(worker_env, tmp_path):
    """`manage.py runserver` with DEBUG and DEBUG-level logs, on the test database."""
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**worker_env, "DEBUG": "true", "LOG_LEVEL": "DEBUG"}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: call(f"{base}/api/health") == 200, timeout=60,
                 what="the development server")
        yield base, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tokens_cookies_and_passwords_never_reach_the_log(debug_server, django_user_model):
    base, log_path = debug_server
    user = django_user_model.objects.create_user("shop", password="pw-shop-123")
    _, token = create_token(user, "real")
    secrets = [token, "nrf_wrong-but-secret-123", "hunter2-password", "sessionsecret42"]

    # The case: another scheme than Bearer, which ninja logs whole with DEBUG on.
    assert call(f"{base}/api/products", Authorization=f"Token {token}") == 401
    assert call(f"{base}/api/products", Authorization="Bearer nrf_wrong-but-secret-123") == 401
    assert call(f"{base}/api/products", Authorization=f"Bearer {token}") == 200
    assert call(f"{base}/api/products?password=hunter2-password&token={token}",
                Authorization=f"Bearer {token}") == 200
    assert call(f"{base}/api/products", Cookie="sessionid=sessionsecret42") == 401

    def logged() -> str:
        text = log_path.read_text()
        return text if text.count("/api/products") >= 5 else ""

    text = wait_for(logged, timeout=30, what="the five requests in the server's log")
    for secret in secrets:
        assert secret not in text
    assert "Unexpected auth" not in text  # ninja's line is not written at all
    assert "[redacted]" in text  # the query string's password and token, redacted


@override_settings(DEBUG=False)
def test_error_reports_hide_credentials():
    request = RequestFactory().get("/api/products", HTTP_AUTHORIZATION="Bearer nrf_abcdef123",
                                   HTTP_COOKIE="sessionid=sessionsecret42",
                                   HTTP_X_CSRFTOKEN="csrfsecret42")

    def fails(token: str) -> None:
        api_token = token  # noqa: F841 (a local variable the report would show)
        raise ValueError("boom")

    local_secret = "nrf_" + "localsecret99"  # built, so the report's source lines lack it
    try:
        fails(local_secret)
    except ValueError:
        report = ExceptionReporter(request, *sys.exc_info()).get_traceback_text()
    for secret in ("nrf_abcdef123", "sessionsecret42", "csrfsecret42", local_secret):
        assert secret not in report
    assert "ValueError" in report
