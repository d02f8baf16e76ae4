"""Viewer benchmark: how soon a shopper can spin the product, on a throttled connection.

    python bench/viewer.py [--frames 1440] [--size 512] [--mbps 10] [--latency-ms 40]

Makes a job's worth of transparent frames (a lit, textured box turning; enough to weigh
like real frames), builds the site's previews and sprite with pipeline.delivery.previews exactly as
the worker does, serves them over HTTP and opens static/js/spin-viewer.js in Debian's
chromium with the network throttled through the DevTools protocol. Prints the bytes of
what loads first and the milliseconds until the first full spin works (the sprite is
drawn) and until every angle has its preview.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import math
import sys
import tempfile
import threading
import time
import zipfile
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.delivery.previews import build_site_frames  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def make_frames(root: Path, count: int, size: int) -> None:
    """The engine's output (batches of 100 PNGs and a manifest) for a turning box."""
    from tqdm import tqdm

    batches, entries = [], []
    for start in tqdm(range(0, count, 100), desc="frames", unit="batch"):
        name = f"batch_{start // 100:02d}.zip"
        batches.append(name)
        with zipfile.ZipFile(root / "batches" / name, "w", zipfile.ZIP_STORED) as archive:
            for index in range(start, min(start + 100, count)):
                angle = 2 * math.pi * index / count
                image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
                draw = ImageDraw.Draw(image)
                half = size * 0.3
                w = half * (0.55 + 0.45 * abs(math.cos(angle)))
                c = size / 2
                shade = int(120 + 100 * abs(math.sin(angle)))
                draw.rectangle([c - w, c - half, c + w, c + half], fill=(shade, 90, 60, 255))
                for k in range(12):  # texture, so the PNGs do not compress to nothing
                    x = c - w + (2 * w) * ((k * 0.083 + index / count) % 1)
                    draw.line([x, c - half, x, c + half], fill=(240, 220, 200, 255), width=2)
                out = f"frame_{index:04d}.png"
                buffer = BytesIO()
                image.save(buffer, "PNG")
                archive.writestr(out, buffer.getvalue())
                entries.append({"index": index, "file": out, "batch": name, "row": 0,
                                "azimuth_deg": 360.0 * index / count, "elevation_deg": 15.0})
    (root / "batches" / "manifest.json").write_text(json.dumps({
        "count": count, "frames_per_row": count, "rows": 1, "width": size, "height": size,
        "batches": batches, "frames": entries}))


def spin_json(root: Path, manifest: dict) -> dict:
    """The document the site's /jobs/<id>/spin.json serves, with relative URLs."""
    sprite = manifest["sprite"]
    return {
        "width": manifest["width"], "height": manifest["height"],
        "rows": [{"elevation": 15.0, "frames": [
            {"azimuth": f["azimuth_deg"], "preview": f["preview"], "full": f["png"]}
            for f in manifest["frames"]]}],
        "sprite": {"url": sprite["file"], "columns": sprite["columns"],
                   "tile_width": sprite["cell_width"], "tile_height": sprite["cell_height"],
                   "count": len(sprite["frames"]), "row": sprite["row"]},
    }


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per file: too many
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1440)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mbps", type=float, default=10.0, help="download speed")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as tmp:
        root = Path(tmp)
        (root / "batches").mkdir()
        started = time.monotonic()
        make_frames(root, args.frames, args.size)
        manifest = build_site_frames(root)
        print(f"built {args.frames} frames of {args.size} px with previews and sprite in "
              f"{time.monotonic() - started:.1f} s")
        (root / "spin.json").write_text(json.dumps(spin_json(root, manifest)))
        (root / "spin-viewer.js").write_bytes((ROOT / "static/js/spin-viewer.js").read_bytes())
        (root / "index.html").write_text(
            '<!doctype html><div data-spin-viewer data-src="spin.json" '
            'style="max-width:640px"></div><script src="spin-viewer.js"></script>')

        previews = sum((root / f["preview"]).stat().st_size for f in manifest["frames"])
        full = sum((root / f["png"]).stat().st_size for f in manifest["frames"])
        print(f"spin.json {(root / 'spin.json').stat().st_size / 1024:.0f} KiB, "
              f"sprite {(root / 'sprite.webp').stat().st_size / 1024:.0f} KiB "
              f"({len(manifest['sprite']['frames'])} frames), previews "
              f"{previews / 2**20:.1f} MiB, full PNGs {full / 2**20:.1f} MiB")

        handler = functools.partial(QuietHandler, directory=tmp)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": args.latency_ms,
                "downloadThroughput": args.mbps * 1e6 / 8, "uploadThroughput": 2e6 / 8})
            cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
            t0 = time.monotonic()
            page.goto(url)
            page.wait_for_selector("[data-spin-viewer][data-ready]", timeout=120_000)
            first_spin = time.monotonic() - t0
            page.wait_for_selector("[data-spin-viewer][data-previews-loaded]",
                                   timeout=600_000)
            all_previews = time.monotonic() - t0
            browser.close()
        server.shutdown()
    print(f"network {args.mbps:g} Mbit/s, {args.latency_ms:g} ms latency: first full spin "
          f"after {first_spin * 1000:.0f} ms, every angle's preview after "
          f"{all_previews:.1f} s")


if __name__ == "__main__":
    main()
