"""Photos placed, reprojection error and seconds per step: our settings vs pycolmap's.

    .venv/bin/python bench/poses.py DIR [--max-image-size 1600] [--only ours|defaults]
    .venv/bin/python bench/poses.py --synthetic   # the tests' synthetic capture

"ours" is the engine's colmap stage exactly as the worker runs it; "defaults" is
pycolmap's default extraction, exhaustive matching and incremental mapping on the same
photos (one shared camera, like ours).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.engine.colmap import estimate_poses  # noqa: E402
from pipeline.engine.errors import InputError  # noqa: E402
from pipeline.engine.progress import Progress  # noqa: E402
from pipeline.engine.workspace import Workspace  # noqa: E402


def ours(photos: Path, work: Path, max_image_size: int) -> dict:
    ws = Workspace(work / "ours").ensure()
    try:
        result = estimate_poses(ws, images=photos, max_image_size=max_image_size,
                                progress=Progress(ws.progress_json, "colmap", show_bar=False))
        placed, total, error, timings = (result.placed, result.total,
                                         result.mean_reprojection_error, result.timings)
    except InputError:
        import json

        summary = json.loads((ws.colmap_dir / "summary.json").read_text())
        placed, total = summary["placed"], summary["total"]
        error, timings = summary["mean_reprojection_error"], summary["timings"]
    return {"placed": placed, "total": total, "error": error, **timings}


def defaults(photos: Path, work: Path, max_image_size: int) -> dict:
    import pycolmap

    out = work / "defaults"
    out.mkdir()
    database = out / "database.db"
    names = sorted(p.name for p in photos.iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = max_image_size
    timings = {}
    started = time.monotonic()
    pycolmap.extract_features(database, photos, image_names=names,
                              camera_mode=pycolmap.CameraMode.SINGLE,
                              extraction_options=extraction)
    timings["extract"] = time.monotonic() - started
    started = time.monotonic()
    pycolmap.match_exhaustive(database)
    timings["match"] = time.monotonic() - started
    started = time.monotonic()
    models = pycolmap.incremental_mapping(database, photos, out / "sparse")
    timings["map"] = time.monotonic() - started
    best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
    return {"placed": best.num_reg_images() if best else 0, "total": len(names),
            "error": round(best.compute_mean_reprojection_error(), 3) if best else 0.0,
            **{k: round(v, 2) for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, nargs="?", help="folder of photos")
    parser.add_argument("--synthetic", action="store_true",
                        help="render the tests' synthetic capture (24 views) and use it")
    parser.add_argument("--max-image-size", type=int, default=1600)
    parser.add_argument("--only", choices=["ours", "defaults"])
    args = parser.parse_args()

    import pycolmap

    pycolmap.logging.minloglevel = 2
    with tempfile.TemporaryDirectory(prefix="bench-poses-") as tmp:
        work = Path(tmp)
        photos = args.photos
        if args.synthetic:
            from tests.synthetic_scene import make_scene

            photos = make_scene(work / "scene").images_dir
        if photos is None:
            parser.error("give a folder of photos or --synthetic")
        print(f"{photos}  (max image size {args.max_image_size}, pycolmap "
              f"{pycolmap.__version__})")
        print(f"{'settings':<10} {'placed':>9} {'error px':>9} {'extract s':>10} "
              f"{'match s':>8} {'map s':>7}")
        runs = {"ours": ours, "defaults": defaults}
        for label, run in runs.items():
            if args.only and label != args.only:
                continue
            r = run(photos, work, args.max_image_size)
            print(f"{label:<10} {r['placed']:>4}/{r['total']:<4} {r['error']:>9.3f} "
                  f"{r['extract']:>10.1f} {r['match']:>8.1f} {r['map']:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
