"""The viewer's spin document (spin.json): a finished job's frames as the 360° viewer, on the
site or on a storefront, loads them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.jobs import selectors
from pipeline.models import Job


def spin_document(job: Job, absolute: Callable[[str], str] = str) -> dict[str, Any] | None:
    """The viewer's spin.json for a finished job, from its site manifest, or None.

    Rows come out ordered by elevation, each row's frames by azimuth. `absolute` (the
    request's build_absolute_uri) makes every URL a full one, so the document works on a
    storefront's own domain; frames in a bucket have full URLs already.
    """
    manifest = selectors.read_manifest(job)
    if not manifest or not manifest.get("frames"):
        return None
    urls = selectors.manifest_urls(job, manifest, absolute)
    rows: dict[int, list[dict[str, Any]]] = {}
    for frame in urls.frames:
        rows.setdefault(int(frame.get("row", 0)), []).append(frame)
    spin: dict[str, Any] = {
        "width": int(urls.width or 0),
        "height": int(urls.height or urls.width or 0),
        "rows": [
            {"elevation": float(frames[0].get("elevation_deg", 0.0)),
             "frames": [{"azimuth": float(f.get("azimuth_deg", 0.0)),
                         "preview": f["preview_url"], "full": f["url"]}
                        for f in sorted(frames, key=lambda f: float(f.get("azimuth_deg", 0)))]}
            for _, frames in sorted(rows.items())
        ],
        "downloads": [b["url"] for b in urls.batches],
    }
    sprite = urls.sprite
    if sprite:
        spin["sprite"] = {"url": sprite["url"], "columns": sprite["columns"],
                          "tile_width": sprite["cell_width"],
                          "tile_height": sprite["cell_height"],
                          "count": len(sprite["frames"]), "row": sprite["row"]}
    return spin
