"""`make serve` as a newcomer runs it: gunicorn and the worker with ENVIRONMENT=production,
on a database, media and static files of its own, checked over real HTTP, then stopped."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import psutil
import pytest
from PIL import Image

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow

PASSWORD = "a long pass phrase 7"
# Variables that would point the served site at the tests' database, broker or storage.
NOT_PASSED = re.compile(r"DATABASE_URL|REDIS_URL|Q_BROKER|SQLITE_PATH|MEDIA_ROOT|STATIC_ROOT|"
                        r"NERF_DATA_ROOT|FRAME_URL|.*_STORAGE_PATH|S3_.*|.*_S3_.*")

# Run by `manage.py shell` in the served environment: two users, the owner's product, and
# a finished job whose frames are published as the worker publishes them.
SETUP = f"""
import json
from django.contrib.auth import get_user_model
from django.urls import reverse
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import finished_frames

users = get_user_model().objects
owner = users.create_user("owner", password={PASSWORD!r})
users.create_user("other", password={PASSWORD!r})
product = Product.objects.create(owner=owner, name="Mug", sku="MUG-1")
job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
finished_frames(job, rows=1, per_row=4)
print(json.dumps({{"product": product.get_absolute_url(), "job": str(job.pk),
                   "upload": reverse("products:photos_upload", args=[product.pk])}}))
"""


class Visitor:
    """One browser's cookies, reaching the site as through the platform's TLS proxy: each
    request says it came over HTTPS (X-Forwarded-Proto), so the Secure cookies that
    production sets go with it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def get(self, url: str) -> http.client.HTTPResponse:
        return self._request("GET", urlsplit(url).path)

    def sign_in(self, username: str) -> None:
        page = self.get("/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        done = self._request("POST", "/accounts/login/", {
            "csrfmiddlewaretoken": token.group(1).decode(), "username": username,
            "password": PASSWORD})
        assert done.status == 302, done.body[:500]
        assert "sessionid" in self.cookies

    def upload(self, url: str, name: str, data: bytes) -> http.client.HTTPResponse:
        """One photo, as the product page's script sends it (multipart, JSON answer)."""
        boundary = "----photo-boundary-7d1e"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                f"filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
        body += data + f"\r\n--{boundary}--\r\n".encode()
        return self._request("POST", url, body, {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json", "X-CSRFToken": self.cookies["csrftoken"]})

    def _request(self, method: str, path: str, form: dict | bytes | None = None,
                 extra: dict[str, str] | None = None):
        origin = f"https://127.0.0.1:{self.port}"
        headers = {"X-Forwarded-Proto": "https", "Referer": origin + path, **(extra or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = form
        if isinstance(form, dict):
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            response.body = response.read()
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookies.update({k: m.value for k, m in SimpleCookie(header).items()})
        return response


@pytest.fixture
def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_env(tmp_path, port) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not NOT_PASSED.fullmatch(k)}
    env.update(
        ENVIRONMENT="production", SECRET_KEY="production-serve-test-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1", HOST="127.0.0.1", PORT=str(port),
        SECURE_SSL_REDIRECT="false", VAR_DIR=str(tmp_path / "var"),
        DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        WEB_CONCURRENCY="1", Q_WORKERS="1",
    )
    return env


def photo_jpeg() -> bytes:
    """A photo large enough for the upload rules: a gradient with a product-like block."""
    image = Image.linear_gradient("L").resize((960, 720)).convert("RGB")
    image.paste((180, 40, 40), (380, 260, 580, 460))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_make_serve_serves_pages_static_photos_and_frames_then_stops(served_env, port,
                                                                    tmp_path):
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        serve = subprocess.Popen(["make", "serve"], cwd=ROOT, env=served_env, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        anonymous = Visitor(port)

        def healthy() -> bool:
            try:
                return anonymous.get("/healthz").status == 200
            except OSError:
                assert serve.poll() is None, log_path.read_text()[-3000:]
                return False

        wait_for(healthy, timeout=600, interval=1, what="make serve to answer /healthz")
        setup = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP], cwd=ROOT,
                               env=served_env, capture_output=True, text=True, timeout=300)
        assert setup.returncode == 0, setup.stderr[-3000:]
        made = json.loads(setup.stdout.strip().splitlines()[-1])

        # The sign-in page through gunicorn, its CSS from collectstatic's hashed names.
        login = anonymous.get("/accounts/login/")
        assert login.status == 200
        assert login.headers["Server"].startswith("gunicorn")
        assert "default-src" in login.headers["Content-Security-Policy"]
        css = re.search(rb'href="(/static/[^"]+\.css)"', login.body).group(1).decode()
        assert re.fullmatch(r"/static/css/site\.[0-9a-f]{12}\.css", css)
        style = anonymous.get(css)
        assert style.status == 200 and b"{" in style.body
        assert "immutable" in style.headers["Cache-Control"]

        # The owner uploads a photo; its thumbnail is served at the URL the answer gives,
        # which the product page shows too, to the owner alone.
        owner, other = Visitor(port), Visitor(port)
        owner.sign_in("owner")
        other.sign_in("other")
        owner.get(made["product"])  # the page sets the CSRF cookie its script sends back
        uploaded = owner.upload(made["upload"], "mug.jpg", photo_jpeg())
        assert uploaded.status == 200, uploaded.body[:1000]
        result = json.loads(uploaded.body)["results"][0]
        assert result["accepted"], result
        thumbnail_url = result["photo"]["thumbnail_url"]
        page = owner.get(made["product"])
        assert page.status == 200
        assert f'src="{thumbnail_url}"'.encode() in page.body
        thumbnail = owner.get(thumbnail_url)
        assert thumbnail.status == 200
        assert thumbnail.headers["Content-Type"].startswith("image/")
        Image.open(io.BytesIO(thumbnail.body)).verify()
        assert other.get(thumbnail_url).status == 404
        assert anonymous.get(thumbnail_url).status == 404

        # The finished job's public document and every kind of file it lists.
        spin = anonymous.get(f"/jobs/{made['job']}/spin.json")
        assert spin.status == 200
        doc = json.loads(spin.body)
        frame = doc["rows"][0]["frames"][0]
        for url in (frame["full"], frame["preview"], doc["sprite"]["url"], *doc["downloads"]):
            response = anonymous.get(url)
            assert response.status == 200, url
            assert response.body, url

        everything = [psutil.Process(serve.pid),
                      *psutil.Process(serve.pid).children(recursive=True)]
        commands = [" ".join(proc.cmdline()) for proc in everything if alive(proc)]
        assert any("gunicorn" in c for c in commands), commands
        assert any("manage.py qcluster" in c for c in commands), commands

        # As Ctrl-C in its terminal, or a service manager stopping it: SIGTERM to the group.
        os.killpg(serve.pid, signal.SIGTERM)
        wait_for(lambda: not any(alive(proc) for proc in everything), timeout=90,
                 what="every process of make serve to stop")
        assert "Stopping" in log_path.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):  # the test failed before the SIGTERM
            os.killpg(serve.pid, signal.SIGKILL)
        serve.wait()
