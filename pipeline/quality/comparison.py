"""How faithful the spin is, as the site keeps it: a few photos beside renders from their
own cameras, their scores and one verdict.

The render stage makes it in the workspace (pipeline.engine.compare); finalize brings it
into the job's private folder (pipeline.delivery.storage.job_compare_dir) and stores what
`keep_comparison` reads from it on Job.comparison. Its images are cut-outs of the owner's
photos, so only the job's owner gets them (pipeline.views.compare_image and the API,
through pipeline.quality.responses), never FRAME_URL.

Beside it, the masks' review (pipeline.engine.mask_review): an overlay of each trained
photo's mask, flagged where it covers too little or too much, kept as
Job.comparison["masks"] and served the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.delivery.storage import job_compare_dir
from pipeline.engine.workspace import MASKS_JSON
from pipeline.models import Job

VERDICTS = ("faithful", "fair", "poor")
IMAGE_KINDS = ("photo", "render")
MASK_KIND = "mask"
METRICS = ("psnr", "ssim", "alpha_iou")
MAX_VIEWS = 10
MASK_FLAGS = ("too_little", "too_much", "edge")


def keep_comparison(doc_path: Path) -> dict[str, Any]:
    """What Job.comparison stores, from a collected compare.json: the verdict, the mean
    scores, the thresholds behind the verdict and each view whose two images are there.
    {} when nothing usable came back."""
    try:
        doc = json.loads(Path(doc_path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("verdict") not in VERDICTS:
        return {}
    folder = Path(doc_path).parent
    views = []
    for view in (doc.get("views") or [])[:MAX_VIEWS]:
        try:
            files = {f"{kind}_file": _bare(view[f"{kind}_file"]) for kind in IMAGE_KINDS}
            scores = {key: _number(view[key]) for key in METRICS}
        except (KeyError, TypeError, ValueError):
            continue
        if all((folder / name).is_file() for name in files.values()):
            views.append({"photo": str(view.get("photo", ""))[:200], **files, **scores})
    if not views:
        return {}
    thresholds = {name: {key: _number(floor[key]) for key in METRICS}
                  for name, floor in (doc.get("thresholds") or {}).items()
                  if name in VERDICTS and isinstance(floor, dict)
                  and all(key in floor for key in METRICS)}
    return {"verdict": doc["verdict"], "verdict_text": str(doc.get("verdict_text", ""))[:300],
            "mean": {key: round(sum(v[key] for v in views) / len(views), 3)
                     for key in METRICS},
            "thresholds": thresholds, "views": views, "masks": _keep_masks(folder)}


def _keep_masks(folder: Path) -> list[dict[str, Any]]:
    """The masks' review from masks.json in `folder`: each mask whose overlay is there."""
    try:
        doc = json.loads((folder / MASKS_JSON).read_text())
        entries = doc["masks"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    kept = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            item = {"photo": str(entry.get("photo", ""))[:200], "file": _bare(entry["file"]),
                    "coverage": _number(entry["coverage"]), "edge": _number(entry["edge"]),
                    "flag": entry.get("flag") if entry.get("flag") in MASK_FLAGS else None,
                    "advice": str(entry.get("advice") or "")[:300]}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if (folder / item["file"]).is_file():
            kept.append(item)
    return kept


# Per kind of image: the list on Job.comparison that holds it, and its entries' file key.
IMAGE_ENTRIES = {"photo": ("views", "photo_file"), "render": ("views", "render_file"),
                 MASK_KIND: ("masks", "file")}


def image_path(job: Job, number: int, kind: str) -> Path | None:
    """The file of entry `number` (from 1) of the job's comparison: a view's photo or
    render, or a mask's overlay; None when there is no such file."""
    if kind not in IMAGE_ENTRIES:
        return None
    listing, key = IMAGE_ENTRIES[kind]
    entries = (job.comparison or {}).get(listing) or []
    if not 1 <= number <= len(entries):
        return None
    try:
        path = job_compare_dir(job) / _bare(entries[number - 1][key])
    except (KeyError, TypeError, ValueError):
        return None
    return path if path.is_file() else None


def _bare(name: Any) -> str:
    """A bare file name: no folders, nothing hidden."""
    if not isinstance(name, str) or not name or PurePosixPath(name).name != name \
            or name.startswith(".") or "\\" in name:
        raise ValueError(f"unexpected file name {name!r}")
    return name


def _number(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number
