"""progress.json, the only channel from a running stage to whoever watches it.

The file is rewritten atomically (temp file + rename) so a reader on another process, or
on the Modal volume, never sees half a document. On a terminal a tqdm bar shows the same;
into a log file (the worker's, Modal's) it goes as plain lines instead, since a bar's
carriage-return redraws make one line of tens of thousands of characters there.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .workspace import write_json_atomic

LINE_SECONDS = 5.0
"""Without a terminal, a plain progress line goes out when the step changes and at most
this often in between."""


def read_progress(path: Path) -> dict[str, Any] | None:
    """The last state written, or None when there is none yet (or it cannot be read)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class Progress:
    """Reports one stage: fraction done, message, ETA and stage metrics.

    Writes are throttled to one every `min_interval` seconds, except the final ones.
    """

    def __init__(
        self,
        path: Path,
        stage: str,
        *,
        show_bar: bool = True,
        min_interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.stage = stage
        self.min_interval = min_interval
        self.started = time.monotonic()
        self.fraction = 0.0
        self.message = ""
        self.metrics: dict[str, Any] = {}
        self._last_write = 0.0
        self._bar = None
        self._lines = show_bar and not sys.stderr.isatty()
        self._last_line = (0.0, "", -1.0)  # when, which step, fraction
        if show_bar and not self._lines:
            from tqdm import tqdm

            self._bar = tqdm(total=1000, desc=stage, unit="‰", leave=True, dynamic_ncols=True)
        self._write("running", force=True)

    def eta_seconds(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if self.fraction <= 0.01 or elapsed < 1:
            return None
        return elapsed * (1 - self.fraction) / self.fraction

    def update(self, fraction: float, message: str | None = None, **metrics: Any) -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        if message is not None:
            self.message = " ".join(message.split())
        self.metrics.update(metrics)
        if self._bar is not None:
            self._bar.n = int(self.fraction * 1000)
            if message:
                self._bar.set_postfix_str(self.message[:60], refresh=False)
            self._bar.refresh()
        if self._lines:
            self._progress_line()
        self._write("running")

    def log(self, message: str) -> None:
        """A line on the console (above the bar) that also becomes the current message."""
        if self._bar is not None:
            self._bar.write(message)
        elif self._lines:
            print(message, file=sys.stderr, flush=True)
        self.update(self.fraction, message)

    def _progress_line(self) -> None:
        """A plain line when the step changed (its message without the count in brackets)
        or LINE_SECONDS passed with progress since the last one."""
        now = time.monotonic()
        step = re.sub(r"\s*\(.*\)$", "", self.message)
        when, last_step, last_fraction = self._last_line
        if step == last_step and (now - when < LINE_SECONDS or self.fraction == last_fraction):
            return
        self._last_line = (now, step, self.fraction)
        eta = self.eta_seconds()
        left = f", about {eta:.0f} s left" if eta is not None else ""
        print(f"{self.stage}: {self.fraction:.0%} {self.message}{left}", file=sys.stderr,
              flush=True)

    def done(self, message: str, **metrics: Any) -> None:
        self.fraction = 1.0
        self.message = message
        self.metrics.update(metrics)
        self._close()
        if self._lines:
            print(f"{self.stage}: done. {message}", file=sys.stderr, flush=True)
        self._write("succeeded", force=True)

    def fail(self, message: str) -> None:
        self.message = " ".join(message.split())
        self._close()
        self._write("failed", force=True, error=self.message)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.n = int(self.fraction * 1000)
            self._bar.close()
            self._bar = None

    def _write(self, status: str, *, force: bool = False, error: str | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        eta = self.eta_seconds() if status == "running" else 0.0
        write_json_atomic(
            self.path,
            {
                "stage": self.stage,
                "status": status,
                "stage_progress": round(self.fraction, 4),
                "message": self.message,
                "eta_seconds": None if eta is None else round(eta, 1),
                "error": error,
                "metrics": self.metrics,
                "pid": os.getpid(),
                "updated_at": datetime.now(UTC).isoformat(),
            },
        )
