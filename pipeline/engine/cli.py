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
from .lifeline import die_with_parent_from_env
from .presets import DEFAULT_FILL_PERCENT, MAX_FILL_PERCENT, MIN_FILL_PERCENT
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


def _cmd_train(args: argparse.Namespace, ws: Workspace) -> str:
    from .train import loss_history, train

    progress = Progress(ws.progress_json, "train")
    with _reporting(progress):
        result = train(ws, preset=args.preset, iterations=args.iterations, progress=progress)
        progress.done(result.summary_line(), steps=result.steps, loss=result.loss,
                      loss_curve=loss_history(ws))
    return result.summary_line()


def _cmd_render(args: argparse.Namespace, ws: Workspace) -> str:
    from .render import render

    progress = Progress(ws.progress_json, "render")
    with _reporting(progress):
        result = render(ws, frames=args.frames, rows=args.rows, size=args.size,
                        batch_size=args.batch_size, fill=args.fill, progress=progress)
        comparison = result.comparison or {}
        progress.done(result.summary_line(), frames_done=result.frames,
                      verdict=comparison.get("verdict"), fidelity=comparison.get("mean"))
    return result.summary_line()


def _cmd_run(args: argparse.Namespace, ws: Workspace) -> str:
    """colmap, then train (masks included), then render, each reporting as its own stage."""
    colmap_args = argparse.Namespace(images=args.images, max_image_size=args.max_image_size,
                                     matcher="auto")
    lines = [_cmd_colmap(colmap_args, ws)]
    print(lines[-1])
    lines.append(_cmd_train(argparse.Namespace(preset=args.preset, iterations=None), ws))
    print(lines[-1])
    render_args = argparse.Namespace(frames=args.frames, rows=args.rows, size=args.size,
                                     batch_size=args.batch_size, fill=args.fill)
    lines.append(_cmd_render(render_args, ws))
    return lines[-1]


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
                        help="long side of the dataset's photos (default 1600); features "
                        "are found at 1200 px or this, whichever is smaller")
    colmap.add_argument("--matcher", choices=["auto", "exhaustive", "sequential"],
                        default="auto", help="auto: each photo with its neighbours in "
                        "shooting order and the photos it shares the most features with "
                        "(every pair up to 12 photos); exhaustive: every pair; sequential: "
                        "neighbours in shooting order and a loop skeleton (default auto)")
    colmap.set_defaults(handler=_cmd_colmap)

    from .presets import DEFAULT_PRESET, PRESET_NAMES

    train = stages.add_parser(
        "train",
        help="mask the photos and train a NeRF (nerfstudio's nerfacto)",
        description="Build foreground masks, then train nerfacto on the masked photos; the "
        "config and checkpoints go to WS/model/nerfacto/, the loss history to "
        "WS/model/loss.json. Resumes from the latest checkpoint of the same preset.",
    )
    _add_workspace(train)
    _add_preset(train, PRESET_NAMES, DEFAULT_PRESET)
    train.add_argument("--iterations", type=int, metavar="N",
                       help="training steps (default: the preset's)")
    train.set_defaults(handler=_cmd_train)

    render = stages.add_parser(
        "render",
        help="render transparent RGBA frames orbiting the product",
        description="Render RGBA PNG frames orbiting the product into WS/frames/batch_NN.zip "
        "with WS/frames/manifest.json.",
    )
    _add_workspace(render)
    _add_render_options(render)
    render.set_defaults(handler=_cmd_render)

    run = stages.add_parser(
        "run",
        help="colmap, train and render in one go",
        description="Estimate poses, train and render: the whole job from a folder of photos.",
    )
    _add_workspace(run)
    run.add_argument("--images", type=Path, help="folder of photos (or an images.zip); "
                     "default: WS/images.zip")
    run.add_argument("--max-image-size", type=int, default=1600, metavar="PX",
                     help="long side of the dataset's photos (default 1600); features are "
                     "found at 1200 px or this, whichever is smaller")
    _add_preset(run, PRESET_NAMES, DEFAULT_PRESET)
    _add_render_options(run)
    run.set_defaults(handler=_cmd_run)
    return parser


def _add_preset(parser: argparse.ArgumentParser, names: tuple[str, ...], default: str) -> None:
    parser.add_argument("--preset", choices=names, default=default,
                        help=f"quality and cost: test and draft are quick, standard is the "
                        f"production default, high is slow (default {default}); each is sized "
                        "for the device, CUDA or CPU")


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, metavar="N",
                        help="frames per turn (default: 1440, one every 0.25 degrees, on a GPU; "
                        "fewer with CPU presets)")
    parser.add_argument("--rows", type=int, default=1, metavar="R",
                        help="turns at elevations across the photos' range; 1 = one turn at "
                        "their mean elevation (default 1)")
    parser.add_argument("--size", type=int, metavar="PX",
                        help="frame width and height in pixels (default: the preset's)")
    parser.add_argument("--fill", type=int, default=DEFAULT_FILL_PERCENT, metavar="PERCENT",
                        help="the product's widest silhouette over the orbit spans this share "
                        f"of the frame ({MIN_FILL_PERCENT}-{MAX_FILL_PERCENT}, default "
                        f"{DEFAULT_FILL_PERCENT})")
    parser.add_argument("--batch-size", type=int, default=100, metavar="B",
                        help="frames per zip in WS/frames/ (default 100)")


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", type=Path, required=True, metavar="WS",
                        help="the job workspace folder (created if missing)")


def main(argv: list[str] | None = None) -> int:
    die_with_parent_from_env()  # started by the local backend: no orphan outlives the worker
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
