"""Fixtures shared by the whole suite.

Engine tests (tests/engine) need no database; the Django ones run on the real database the
settings name: SQLite by default, PostgreSQL when DATABASE_URL points at one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def worker_environment(settings_dict: dict) -> dict[str, str]:
    """The environment a child process needs to use the test database we are on."""
    env = dict(os.environ)
    if settings_dict["ENGINE"].endswith("sqlite3"):
        env["SQLITE_PATH"] = str(settings_dict["NAME"])
        env.pop("DATABASE_URL", None)
    else:
        user = settings_dict.get("USER") or ""
        password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
        auth = f"{user}{password}@" if user else ""
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    return env


@pytest.fixture(autouse=True)
def fresh_rate_limits(settings) -> None:
    """Throttle counters live in the "throttles" cache, and every test calls from
    127.0.0.1: each test gets counters of its own (a fresh key prefix; Django reopens the
    caches when CACHES changes), so one test's calls never count against the next one's
    limits. Nothing is cleared: on Redis, that would empty the task queue's database too;
    and the default cache, where the worker publishes its status, is left as it is."""
    throttles = settings.CACHES["throttles"]
    settings.CACHES = {**settings.CACHES, "throttles": {
        **throttles, "KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex[:12]}"}}


@pytest.fixture
def worker_env(transactional_db, settings) -> dict[str, str]:
    from django.db import connection

    env = worker_environment(connection.settings_dict)
    env["Q_WORKERS"] = "1"
    return env


@pytest.fixture
def qcluster(worker_env, tmp_path) -> Iterator[subprocess.Popen]:
    """A real django-q2 cluster process (`manage.py qcluster`) on the test database."""
    log = (tmp_path / "qcluster.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=worker_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def wait_for(predicate, *, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail the test with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
