"""Turntable videos from a spin's RGBA frames, with the ffmpeg binary that imageio-ffmpeg
bundles. No Django here: frames in, a video file out, progress through a callback.

Two formats, for the two places a spin goes as a video:

- MP4: H.264 in yuv420p, the one every player, marketplace and social network takes. It
  has no alpha, so each frame is laid over a solid background colour first.
- WebM: VP9 in yuva420p, which keeps the frames' transparency (browsers play it with
  alpha over whatever the page shows behind it).

Frames go to ffmpeg's stdin as raw RGBA: nothing is re-encoded to PNG on the way.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from PIL import Image

Format = Literal["mp4", "webm"]

# One turn lasts TURN_SECONDS when the row has frames enough for MAX_FPS; a sparser row
# (a draft's 36 frames) plays slower rather than spinning in a blink, and a denser one
# (1440 frames) is thinned to MAX_FPS * TURN_SECONDS evenly spaced frames.
TURN_SECONDS = 8
MAX_FPS = 30
# Full HD at most: what marketplaces and social networks show; larger frames (up to 4096 px)
# would only make the file heavier and slower to make.
MAX_SIDE = 1080
# Encoder settings: visually clean at web sizes, and fast enough for a worker's CPU.
# VP9 leaves its alternate reference frames off: with alpha some decoders show them.
CODEC_ARGS: dict[Format, list[str]] = {
    "mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium", "-crf", "20",
            "-movflags", "+faststart"],
    "webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "0", "-crf", "32",
             "-deadline", "good", "-cpu-used", "4", "-row-mt", "1", "-auto-alt-ref", "0"],
}
DECODE_THREADS = 2
DECODE_AHEAD = 8
FFMPEG_TIMEOUT_S = 120  # after the last frame: the encoder only has to flush


class VideoError(Exception):
    """The video could not be made; the message says why, for the user."""


@dataclass(frozen=True)
class Plan:
    """Which of the row's frames the video shows, and how fast."""

    picks: list[int]
    """Indexes into the row, in order."""
    fps: Fraction


def plan(frame_count: int) -> Plan:
    """One full turn: every frame at the rate that makes it last TURN_SECONDS, at most
    MAX_FPS; past MAX_FPS * TURN_SECONDS frames, an evenly spaced choice of them."""
    if frame_count < 1:
        raise VideoError("The spin has no frames to make a video from.")
    count = min(frame_count, MAX_FPS * TURN_SECONDS)
    picks = [i * frame_count // count for i in range(count)]
    return Plan(picks=picks, fps=min(Fraction(count, TURN_SECONDS), Fraction(MAX_FPS)))


def fitted_size(width: int, height: int) -> tuple[int, int]:
    """The frame's size scaled down to MAX_SIDE on its longer side (never up)."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def even_size(width: int, height: int) -> tuple[int, int]:
    """yuv420p halves the colour resolution in both directions: sides must be even."""
    return width + width % 2, height + height % 2


def encode(
    frames: Iterable[Image.Image], dest: Path, *, fmt: Format, count: int, fps: Fraction,
    background: tuple[int, int, int] | None = None, ffmpeg: str | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Write `count` frames (any PIL mode; all the size of the first) to `dest` as `fmt`.

    MP4 lays each frame over `background` (white when None); WebM keeps its alpha. Frames
    larger than MAX_SIDE are scaled down; an odd side is padded by one transparent pixel.
    `on_progress` gets the fraction of frames sent. Raises VideoError with ffmpeg's last
    words when it fails.
    """
    if fmt not in CODEC_ARGS:
        raise VideoError(f"Unknown video format {fmt!r}: use one of {', '.join(CODEC_ARGS)}.")
    ffmpeg = ffmpeg or ffmpeg_exe()
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise VideoError("The spin has no frames to make a video from.")
    source = first.size
    size = even_size(*fitted_size(*source))
    fill = (*(background or (255, 255, 255)), 255) if fmt == "mp4" else (0, 0, 0, 0)
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{size[0]}x{size[1]}",
        "-framerate", str(fps), "-i", "pipe:0",
        *CODEC_ARGS[fmt], "-frames:v", str(count), "-an", str(dest),
    ]
    with tempfile.TemporaryFile() as log:
        # stderr to a file: a pipe nobody reads while frames go in could fill and stall.
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=log)
        assert proc.stdin is not None
        sent = 0
        # Frames are decoded and laid out a few ahead, in threads (Pillow lets go of the
        # GIL while it decodes), while ffmpeg encodes the ones before them.
        pool = ThreadPoolExecutor(max_workers=DECODE_THREADS)
        pixels = _ahead(pool, lambda f: _canvas(f, source, size, fill).tobytes(),
                        itertools.islice(itertools.chain([first], iterator), count))
        try:
            for data in pixels:
                proc.stdin.write(data)
                sent += 1
                if on_progress is not None:
                    on_progress(sent / count)
            proc.stdin.close()
            returncode = proc.wait(timeout=FFMPEG_TIMEOUT_S)
        except BrokenPipeError:
            returncode = proc.wait(timeout=FFMPEG_TIMEOUT_S)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if returncode != 0 or sent != count:
            log.seek(0)
            words = log.read().decode(errors="replace").strip().splitlines()[-3:]
            reason = "; ".join(words) or f"it exited with status {returncode}"
            if sent != count:
                reason = f"{sent} of {count} frames arrived"
            raise VideoError(f"ffmpeg could not make the {fmt.upper()} video: {reason}.")


def _ahead(pool: ThreadPoolExecutor, work: Callable[[Image.Image], bytes],
           frames: Iterable[Image.Image]) -> Iterator[bytes]:
    """work(frame) for each frame in order, at most DECODE_AHEAD frames ahead of the
    consumer: a long spin never sits decoded in memory all at once."""
    pending: deque[Future[bytes]] = deque()
    for frame in frames:
        pending.append(pool.submit(work, frame))
        if len(pending) > DECODE_AHEAD:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def ffmpeg_exe() -> str:
    """The ffmpeg that imageio-ffmpeg ships in its wheel (or IMAGEIO_FFMPEG_EXE)."""
    import imageio_ffmpeg  # lazily: only the worker making a video needs it

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise VideoError(f"No ffmpeg to make videos with: {exc}") from exc


def _canvas(frame: Image.Image, source: tuple[int, int], size: tuple[int, int],
            fill: tuple[int, int, int, int]) -> Image.Image:
    """The frame (`source` px, as the first was) as RGBA, fitted into MAX_SIDE, on a `size`
    canvas of `fill`: a colour for MP4, clear for WebM."""
    if frame.size != source:
        raise VideoError(f"The frames differ in size ({frame.width} × {frame.height} px "
                         f"after {source[0]} × {source[1]} px).")
    rgba = frame.convert("RGBA")
    fitted = fitted_size(*source)
    if rgba.size != fitted:  # Pillow resizes RGBA premultiplied: no dark fringes
        rgba = rgba.resize(fitted, Image.Resampling.LANCZOS)
    if rgba.size == size and fill[3] == 0:
        return rgba
    canvas = Image.new("RGBA", size, fill)
    canvas.alpha_composite(rgba)
    return canvas
