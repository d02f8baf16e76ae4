"""Photos placed, reprojection error, seconds and pose accuracy: our settings vs pycolmap's.

    .venv/bin/python bench/poses.py DIR [--max-image-size 1600] [--only ours|defaults]
    .venv/bin/python bench/poses.py --synthetic   # 50 portrait views of 1080×1920, true poses
    .venv/bin/python bench/poses.py --synthetic --repeat 3   # mean of 3 runs of each
    .venv/bin/python bench/poses.py --synthetic --views 20 --width 540 --height 960

"ours" is the engine's colmap stage exactly as the worker runs it (its total includes
reading the photos and writing the dataset); "defaults" is pycolmap's default extraction,
exhaustive matching and incremental mapping on the same photos (one shared camera, like
ours), in the same run. On the synthetic capture (rendered once, then cached under
--cache) the rotation error is measured against the true poses over every pair of placed
cameras: the angle between the true and the estimated relative rotation, which needs no
alignment of the two frames. "cpu s" is the CPU time of each run, all threads together:
on a shared machine it is the steadier measure of the two.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.engine.colmap import estimate_poses  # noqa: E402
from pipeline.engine.errors import InputError  # noqa: E402
from pipeline.engine.progress import Progress  # noqa: E402
from pipeline.engine.workspace import Workspace  # noqa: E402

STEPS = ("read", "extract", "pair", "match", "map", "extend", "write")


def synthetic_capture(cache: Path, views: int, width: int, height: int, supersample: int
                      ) -> tuple[Path, dict[str, np.ndarray]]:
    """(photos folder, true camera-to-world rotation per photo), rendered on first use."""
    folder = cache / f"scene-{views}x{width}x{height}-ss{supersample}"
    truth = folder / "true_c2w.npz"
    if not truth.is_file():
        import tests.synthetic_scene as synthetic

        # One ray per pixel is 4× cheaper than the tests' 2×2 and SIFT does not mind.
        synthetic.SUPERSAMPLE = supersample
        started = time.monotonic()
        scene = synthetic.make_scene(folder, n_views=views, width=width, height=height)
        np.savez(truth, names=np.array(scene.names), c2w=scene.c2w)
        print(f"rendered {views} views in {time.monotonic() - started:.0f} s", flush=True)
    data = np.load(truth)
    return folder / "images", {str(n): c[:3, :3] for n, c in zip(data["names"], data["c2w"],
                                                                 strict=True)}


def cpu_seconds() -> float:
    """CPU time of this process, all threads: steadier than wall time on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rotations(model) -> dict[str, np.ndarray]:  # noqa: ANN001 (a pycolmap.Reconstruction)
    """Camera-to-world rotation of every placed photo, by file name."""
    return {Path(im.name).name: im.cam_from_world().rotation.matrix().T
            for im in (model.image(i) for i in model.reg_image_ids())}


def rotation_error(true: dict[str, np.ndarray], est: dict[str, np.ndarray]
                   ) -> tuple[float, float]:
    """(median, max) degrees between true and estimated relative rotations of camera pairs."""
    names = sorted(set(true) & set(est))
    if len(names) < 2:
        return float("nan"), float("nan")
    t = np.stack([true[n] for n in names])
    e = np.stack([est[n] for n in names])
    i, j = np.triu_indices(len(names), k=1)
    rel_true = np.einsum("nki,nkj->nij", t[i], t[j])  # R_i^T R_j
    rel_est = np.einsum("nki,nkj->nij", e[i], e[j])
    diff = np.einsum("nki,nkj->nij", rel_true, rel_est)
    cos = (np.trace(diff, axis1=1, axis2=2) - 1) / 2
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return float(np.median(angles)), float(angles.max())


def ours(photos: Path, work: Path, max_image_size: int) -> dict:
    import pycolmap

    ws = Workspace(work / "ours").ensure()
    started = time.monotonic()
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
    elapsed = time.monotonic() - started
    est = ({} if not (ws.colmap_dir / "images.bin").is_file()
           else rotations(pycolmap.Reconstruction(ws.colmap_dir)))
    return {"placed": placed, "total": total, "error": error, **timings,
            "total_s": round(elapsed, 2), "rotations": est}


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
            **{k: round(v, 2) for k, v in timings.items()},
            "total_s": round(sum(timings.values()), 2),
            "rotations": rotations(best) if best else {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, nargs="?", help="folder of photos")
    parser.add_argument("--synthetic", action="store_true",
                        help="render the tests' synthetic scene with known poses and use it")
    parser.add_argument("--views", type=int, default=50)
    parser.add_argument("--width", type=int, default=1080)
    parser.add_argument("--height", type=int, default=1920)
    parser.add_argument("--supersample", type=int, default=1,
                        help="rays per pixel side when rendering (the tests use 2)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-poses",
                        help="where rendered captures are kept between runs")
    parser.add_argument("--max-image-size", type=int, default=1600)
    parser.add_argument("--only", choices=["ours", "defaults"])
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each, alternating: threaded SIFT and RANSAC make the "
                        "rotation error vary from run to run by a few thousandths of a degree")
    args = parser.parse_args()

    import pycolmap

    pycolmap.logging.minloglevel = 2
    truth: dict[str, np.ndarray] = {}
    photos = args.photos
    if args.synthetic:
        photos, truth = synthetic_capture(args.cache, args.views, args.width, args.height,
                                          args.supersample)
    if photos is None:
        parser.error("give a folder of photos or --synthetic")
    with tempfile.TemporaryDirectory(prefix="bench-poses-") as tmp:
        work = Path(tmp)
        print(f"{photos}  (max image size {args.max_image_size}, pycolmap "
              f"{pycolmap.__version__})")
        head = f"{'settings':<10} {'placed':>9} {'error px':>9}"
        head += "".join(f" {s + ' s':>10}" for s in STEPS) + f" {'total s':>8} {'cpu s':>7}"
        if truth:
            head += f" {'rot° med':>9} {'rot° max':>9}"
        print(head)
        runs = {"ours": ours, "defaults": defaults}
        labels = [label for label in runs if not args.only or label == args.only]
        totals: dict[str, list[float]] = {label: [] for label in labels}
        poses_only: dict[str, list[float]] = {label: [] for label in labels}
        cpu_totals: dict[str, list[float]] = {label: [] for label in labels}
        medians: dict[str, list[float]] = {label: [] for label in labels}
        for attempt, label in ((k, label) for k in range(args.repeat) for label in labels):
            run_dir = work / f"{label}-{attempt}"
            run_dir.mkdir()
            cpu = cpu_seconds()
            r = runs[label](photos, run_dir, args.max_image_size)
            r["cpu_s"] = cpu_seconds() - cpu
            totals[label].append(r["total_s"])
            cpu_totals[label].append(r["cpu_s"])
            poses_only[label].append(sum(r.get(s, 0.0) for s in ("extract", "pair", "match",
                                                                  "map", "extend")))
            line = f"{label:<10} {r['placed']:>4}/{r['total']:<4} {r['error']:>9.3f}"
            line += "".join(f" {r[s]:>10.1f}" if s in r else f" {'-':>10}" for s in STEPS)
            line += f" {r['total_s']:>8.1f} {r['cpu_s']:>7.1f}"
            if truth:
                median, worst = rotation_error(truth, r["rotations"])
                medians[label].append(median)
                line += f" {median:>9.3f} {worst:>9.3f}"
            print(line, flush=True)
        if args.repeat > 1:
            for label in labels:
                rot = (f", median rotation error {np.mean(medians[label]):.4f}° (runs: "
                       + ", ".join(f"{m:.4f}" for m in medians[label]) + ")"
                       if medians[label] else "")
                print(f"{label}: mean of {args.repeat} runs: total "
                      f"{np.mean(totals[label]):.1f} s, cpu {np.mean(cpu_totals[label]):.1f} s"
                      + rot)
        if len(labels) == 2 and np.mean(totals["ours"]) > 0:
            def ratio(values: dict[str, list[float]]) -> float:
                return float(np.mean(values["defaults"]) / np.mean(values["ours"]))

            print(f"speed-up: {ratio(totals):.2f}× (defaults' total / ours', whole stage); "
                  f"{ratio(poses_only):.2f}× on extract + pair + match + map (+ extend) alone; "
                  f"{ratio(cpu_totals):.2f}× in CPU seconds")


if __name__ == "__main__":
    main()
