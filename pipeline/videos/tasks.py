"""The django-q2 task that makes one turntable video from a finished job's frames.

`make_video(video_id, attempt)` claims the video (queued → running for that attempt), reads
the frames of the row the viewer starts on from the frames storage one at a time, pipes
them through ffmpeg (pipeline.videos.encode) and publishes the file beside the frames. Any failure
ends the video as failed with a reason the user can act on.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageColor, UnidentifiedImageError

from nerfsite.files import frame_storage
from pipeline.models import Video
from pipeline.videos import encode as video
from pipeline.videos import selectors as video_selectors
from pipeline.videos import services as video_services

log = logging.getLogger(__name__)

SAVE_INTERVAL_S = 1.0  # progress reaches the database at most this often
ENCODE_SHARE = 0.95  # of the progress bar; publishing the file is the rest


def make_video(video_id: str, attempt: int) -> str:
    """The worker task. Returns the video's final status (django-q keeps it as the
    result), or "skipped" when another delivery of the task has it."""
    row = video_services.video_claim(video_id=video_id, attempt=attempt)
    if row is None:
        return "skipped"
    try:
        _make(row)
    except video.VideoError as exc:
        video_services.video_fail(video=row, reason=str(exc))
    except (OSError, UnidentifiedImageError) as exc:
        log.warning("video %s: frames unreadable: %s", row.pk, exc)
        video_services.video_fail(
            video=row, reason=f"The spin's frames could not be read ({exc.__class__.__name__})"
                              "; if they were deleted, render the job again.")
    except Exception as exc:
        log.exception("video %s failed", row.pk)
        video_services.video_fail(
            video=row, reason=f"The video could not be made ({exc.__class__.__name__}); "
                              "try again, and tell us if it keeps failing.")
    row.refresh_from_db()
    return row.status


def _make(row: Video) -> None:
    names = video_selectors.video_frame_names(row.job)
    plan = video.plan(len(names))
    last_save = 0.0

    def on_progress(fraction: float) -> None:
        nonlocal last_save
        if time.monotonic() - last_save >= SAVE_INTERVAL_S:
            last_save = time.monotonic()
            video_services.video_save_progress(video=row, progress=ENCODE_SHARE * fraction)

    with tempfile.TemporaryDirectory(prefix="video-") as scratch:
        dest = Path(scratch) / f"turntable.{row.format}"
        video.encode(
            read_frames([names[i] for i in plan.picks]), dest, fmt=row.format,
            count=len(plan.picks), fps=plan.fps,
            background=ImageColor.getrgb(row.background) if row.background else None,
            on_progress=on_progress)
        video_services.video_save_progress(video=row, progress=ENCODE_SHARE)
        video_services.video_publish(video=row, path=dest)


def read_frames(names: list[str]) -> Iterator[Image.Image]:
    """Each frame from the frames storage (a disk or a bucket), one in memory at a time."""
    for name in names:
        with frame_storage.open(name, "rb") as fh, Image.open(fh) as image:
            image.load()
            yield image
