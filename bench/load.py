"""Load benchmark against a running site (`make serve`): polling and uploads.

    python bench/load.py --token nrf_… [--url http://127.0.0.1:8000] poll \
        [--clients 50] [--seconds 60] [--job JOB_UUID]
    python bench/load.py --token nrf_… upload [--clients 10] [--photos 20] [--zip] \
        [--size 1280x960] [--bystander-token nrf_…]

`poll`: each client loops over the reads a product page polls (a job's progress,
`spin.json` and a frame when --job names a succeeded job; the product list and usage
otherwise) for --seconds. `upload`: each client creates a product and uploads --photos
distinct JPEGs one request at a time (or all in one .zip with --zip), while a bystander
(another user's token, or the same) reads `/api/usage` in a loop: its answers show whether
uploads hold up other users (a 500 "database is locked" on SQLite used to).

Prints, per kind of request, the count, req/s, p50/p95/p99 in ms and the errors by status.
Loopback only and bounded: every loop ends at --seconds (poll) or after its photos
(upload). Needs only the standard library and Pillow.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Stats:
    """Latencies and statuses per request kind, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, kind: str, seconds: float, status: int | str) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if not (isinstance(status, int) and 200 <= status < 400):
                self.errors[kind][str(status)] += 1

    def report(self, wall: float) -> None:
        print(f"{'request':<22}{'count':>7}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
              f"{'p99 ms':>9}  errors")
        total = 0
        for kind in sorted(self.latencies):
            values = sorted(self.latencies[kind])
            total += len(values)
            errors = ", ".join(f"{status}×{n}" for status, n in sorted(self.errors[kind].items()))
            print(f"{kind:<22}{len(values):>7}{len(values) / wall:>9.1f}"
                  f"{percentile(values, 50):>9.0f}{percentile(values, 95):>9.0f}"
                  f"{percentile(values, 99):>9.0f}  {errors or '0'}")
        print(f"{'all':<22}{total:>7}{total / wall:>9.1f}   over {wall:.1f} s")


def percentile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, *, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int | str, bytes]:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=180) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:  # refused, reset, timed out
            return exc.__class__.__name__, b""

    def timed(self, stats: Stats, kind: str, method: str, path: str, **kw) -> bytes:
        started = time.monotonic()
        status, content = self.call(method, path, **kw)
        stats.add(kind, time.monotonic() - started, status)
        return content


def jpeg(seed: int, width: int = 1280, height: int = 960) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    image = Image.effect_noise((width // 8, height // 8), 64).convert("RGB")
    image = image.resize((width, height))
    image.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)),
                (rng.randrange(width // 2), rng.randrange(height // 2),
                 width // 2 + rng.randrange(width // 2), height // 2 + rng.randrange(height // 2)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def zipped(photos: list[bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for i, data in enumerate(photos):
            archive.writestr(f"IMG_{i:04d}.jpg", data)
    return out.getvalue()


def poll_paths(api: Api, job: str | None) -> list[tuple[str, str]]:
    if not job:
        return [("GET /api/products", "/api/products"), ("GET /api/usage", "/api/usage")]
    status, content = api.call("GET", f"/api/jobs/{job}/frames")
    frame = ""
    if status == 200:
        frames = json.loads(content).get("frames") or []
        if frames:
            frame = urlsplit(frames[0].get("url") or frames[0].get("png_url") or "").path
    paths = [("GET /api/jobs/{id}", f"/api/jobs/{job}"),
             ("GET spin.json", f"/jobs/{job}/spin.json")]
    if frame:
        paths.append(("GET a frame", frame))
    return paths


def run_poll(api: Api, args) -> Stats:
    stats = Stats()
    paths = poll_paths(api, args.job)
    stop = time.monotonic() + args.seconds

    def client() -> None:
        while time.monotonic() < stop:
            for kind, path in paths:
                api.timed(stats, kind, "GET", path)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats


def run_upload(api: Api, args) -> Stats:
    stats = Stats()
    bystander = Api(api.base, args.bystander_token or api.token)
    width, height = (int(n) for n in args.size.split("x"))
    photos = [jpeg(seed, width, height) for seed in range(args.photos * args.clients)]
    done = threading.Event()

    def client(n: int) -> None:
        body = json.dumps({"name": f"Load {n}", "sku": f"LOAD-{uuid.uuid4().hex[:10]}"})
        status, content = api.call("POST", "/api/products", body=body.encode(),
                                   content_type="application/json")
        if status != 201:
            stats.add("POST /api/products", 0.0, status)
            return
        product = json.loads(content)["id"]
        mine = photos[n * args.photos:(n + 1) * args.photos]
        if args.zip:
            data, kind = multipart("photos.zip", zipped(mine))
            api.timed(stats, f"POST photos (zip of {len(mine)})", "POST",
                      f"/api/products/{product}/photos", body=data, content_type=kind)
            return
        for i in range(args.photos):
            data, kind = multipart(f"IMG_{i:04d}.jpg", photos[n * args.photos + i])
            api.timed(stats, "POST photos (1 file)", "POST",
                      f"/api/products/{product}/photos", body=data, content_type=kind)

    def watch() -> None:
        while not done.is_set():
            bystander.timed(stats, "bystander GET usage", "GET", "/api/usage")
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="an API token (nrf_…)")
    sub = parser.add_subparsers(dest="mode", required=True)
    poll = sub.add_parser("poll")
    poll.add_argument("--clients", type=int, default=50)
    poll.add_argument("--seconds", type=float, default=60)
    poll.add_argument("--job", help="a succeeded job's id: poll its progress, spin.json "
                                    "and a frame")
    upload = sub.add_parser("upload")
    upload.add_argument("--clients", type=int, default=10)
    upload.add_argument("--photos", type=int, default=20, help="per client")
    upload.add_argument("--zip", action="store_true", help="one .zip per client")
    upload.add_argument("--size", default="1280x960", help="photo size, WIDTHxHEIGHT")
    upload.add_argument("--bystander-token", help="another user's token for the reads "
                                                  "made while uploading")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("this benchmark runs against a site on this machine only")
    api = Api(args.url, args.token)
    started = time.monotonic()
    stats = run_poll(api, args) if args.mode == "poll" else run_upload(api, args)
    stats.report(time.monotonic() - started)


if __name__ == "__main__":
    main()
