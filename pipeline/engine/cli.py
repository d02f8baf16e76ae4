"""``python -m pipeline.engine STAGE …``: each stage of the engine as a command.

Every stage shows a progress bar, keeps WS/progress.json current, exits 0 on success and
on failure exits non-zero with a one-line reason (also written to progress.json).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import EngineError
from .progress import Progress
from .workspace import Workspace

log = logging.getLogger("pipeline.engine")


def _cmd_colmap(args: argparse.Namespace, ws: Workspace) -> str:
    from .colmap import estimate_poses

    progress = Progress(ws.progress_json, "colmap")
    with _reporting(progress):
        result = estimate_poses(
            ws,
            images=args.images,
            max_image_size=args.max_image_size,
            matcher=args.matcher,
            progress=progress,
        )
    return result.summary_line()


class _reporting:
    """Turns an exception inside a stage into a failed progress.json, then re-raises."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __enter__(self) -> Progress:
        return self.progress

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, EngineError):
            self.progress.fail(str(exc))
        elif isinstance(exc, KeyboardInterrupt):
            self.progress.fail("Stopped by the user.")
        else:
            self.progress.fail(f"Unexpected error in the {self.progress.stage} stage: {exc!r}")
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.engine",
        description="Turn product photos into a transparent 360° spin, one stage at a time.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    colmap = stages.add_parser(
        "colmap",
        help="estimate camera poses (pycolmap) and write a nerfstudio dataset",
        description="Estimate camera poses with COLMAP and write WS/dataset/transforms.json "
        "and WS/model/object.json.",
    )
    _add_workspace(colmap)
    colmap.add_argument("--images", type=Path, help="folder of photos (or an images.zip); "
                        "default: WS/images.zip")
    colmap.add_argument("--max-image-size", type=int, default=1600, metavar="PX",
                        help="long side of the copies used for features (default 1600)")
    colmap.add_argument("--matcher", choices=["auto", "exhaustive", "sequential"],
                        default="auto", help="auto: exhaustive up to 60 photos, else "
                        "sequential with loop detection (default auto)")
    colmap.set_defaults(handler=_cmd_colmap)
    return parser


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", type=Path, required=True, metavar="WS",
                        help="the job workspace folder (created if missing)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ws = Workspace(args.workspace).ensure()
    handler: Callable[[argparse.Namespace, Workspace], str] = args.handler
    try:
        summary = handler(args, ws)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: stopped by the user", file=sys.stderr)
        return 130
    print(summary)
    return 0
