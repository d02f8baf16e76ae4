"""Turntable video benchmark: our encoder against ffmpeg run by hand on the PNG frames.

    python bench/video.py [--frames 240] [--size 800] [--repeats 1]

A spin's row of frames sits on disk as RGBA PNGs, as the site publishes them. A user
without the site would point the same ffmpeg (imageio-ffmpeg's, both sides) at them with
the same codec settings: for MP4 an overlay on a colour source (H.264 has no alpha), for
WebM VP9 with alpha straight from the PNGs. We decode the PNGs with Pillow and pipe raw
RGBA to ffmpeg (pipeline/video.py). Prints seconds and bytes per format for both, and
checks both outputs decode to the same frame count and size.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.video import CODEC_ARGS, encode, ffmpeg_exe  # noqa: E402

FPS = Fraction(30)


def make_frames(folder: Path, count: int, size: int) -> list[Path]:
    """A textured box turning on a transparent background, one PNG per frame."""
    rng = np.random.default_rng(0)
    texture = rng.integers(40, 230, (size // 2, size // 4, 3), dtype=np.uint8)
    paths = []
    for i in range(count):
        rgba = np.zeros((size, size, 4), np.uint8)
        width = max(2, round(size / 4 * abs(math.cos(2 * math.pi * i / count))) + size // 8)
        x0, y0 = (size - width) // 2, size // 4
        face = np.asarray(Image.fromarray(texture).resize((width, size // 2)))
        rgba[y0:y0 + size // 2, x0:x0 + width, :3] = face
        rgba[y0:y0 + size // 2, x0:x0 + width, 3] = 255
        path = folder / f"frame_{i:04d}.png"
        Image.fromarray(rgba).save(path, compress_level=1)
        paths.append(path)
    return paths


def ours(paths: list[Path], dest: Path, fmt: str) -> None:
    frames = (Image.open(p) for p in paths)
    encode(frames, dest, fmt=fmt, count=len(paths), fps=FPS, background=(255, 255, 255))


def by_hand(folder: Path, dest: Path, fmt: str, size: int) -> None:
    pattern = str(folder / "frame_%04d.png")
    if fmt == "mp4":
        inputs = ["-f", "lavfi", "-i", f"color=white:s={size}x{size}:r={FPS}",
                  "-framerate", str(FPS), "-i", pattern,
                  "-filter_complex", "[0][1]overlay=shortest=1"]
    else:
        inputs = ["-framerate", str(FPS), "-i", pattern]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *inputs,
                    *CODEC_ARGS[fmt], "-an", str(dest)], check=True)


def probe(path: Path) -> tuple[int, str]:
    """(frames, WxH) as ffmpeg decodes the file."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    frames = int(out.rsplit("frame=", 1)[1].split()[0])
    size = next(w for w in out.split() if "x" in w and w.rstrip(",").replace("x", "").isdigit())
    return frames, size.rstrip(",")


def timed(run, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=240, help="one turn: 8 s at 30 fps")
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        folder = Path(tmp)
        paths = make_frames(folder, args.frames, args.size)
        print(f"{args.frames} RGBA frames of {args.size} px, {FPS} fps, "
              f"ffmpeg {ffmpeg_exe()}")
        print(f"{'format':<8}{'tool':<10}{'seconds':>9}{'KB':>9}{'frames':>8}{'size':>10}")
        for fmt in ("mp4", "webm"):
            for tool, run in (("ours", lambda f=fmt: ours(paths, folder / f"ours.{f}", f)),
                              ("by hand", lambda f=fmt: by_hand(folder, folder / f"hand.{f}",
                                                                f, args.size))):
                seconds = timed(run, args.repeats)
                out = folder / f"{'ours' if tool == 'ours' else 'hand'}.{fmt}"
                frames, size = probe(out)
                print(f"{fmt:<8}{tool:<10}{seconds:>9.2f}{out.stat().st_size / 1024:>9.0f}"
                      f"{frames:>8}{size:>10}")


if __name__ == "__main__":
    main()
