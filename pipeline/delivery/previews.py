"""The finished frames as the site serves them: PNGs, small WebP previews, a sprite sheet.

The viewer loads the sprite first (one request, a coarse turn of the product) so the
first spin works at once, then the previews, then full frames near the current angle.
Layout under FRAME_STORAGE_PATH/{product}/{job}/:

  batches/batch_XX.zip   the engine's zips, as downloaded (for "download all frames")
  frames/frame_XXXX.png  every frame, RGBA
  previews/frame_XXXX.webp  each frame at most PREVIEW_SIZE px, RGBA
  sprite.webp            SPRITE_FRAMES frames of the middle row in a grid
  manifest.json          the engine's manifest plus the paths above
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from pipeline.engine.workspace import write_json_atomic

PREVIEW_SIZE = 256
PREVIEW_QUALITY = 80
SPRITE_FRAMES = 36
SPRITE_CELL = 128


class FramesError(Exception):
    """The collected frames do not match their manifest."""


def build_site_frames(
    root: Path, *, on_progress: Callable[[float], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Unpack root/batches/*.zip into root/frames, make previews and the sprite, and write
    root/manifest.json from root/batches/manifest.json. Returns the site manifest."""
    engine = json.loads((root / "batches" / "manifest.json").read_text())
    frames_dir, previews_dir = root / "frames", root / "previews"
    frames_dir.mkdir(parents=True, exist_ok=True)
    previews_dir.mkdir(parents=True, exist_ok=True)
    entries = engine.get("frames", [])
    if not entries or len(entries) != engine.get("count", len(entries)):
        raise FramesError("The frames manifest lists no frames or a wrong count.")

    by_batch: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_batch.setdefault(_safe_name(entry["batch"]), []).append(entry)
    preview_size = min(PREVIEW_SIZE, int(engine["width"]))
    done = 0
    site_frames: list[dict[str, Any]] = []
    for batch, members in by_batch.items():
        with zipfile.ZipFile(root / "batches" / batch) as archive:
            for entry in members:
                name = _safe_name(entry["file"])
                try:
                    data = archive.read(name)
                except KeyError:
                    raise FramesError(f"{batch} has no {name}.") from None
                (frames_dir / name).write_bytes(data)
                preview = PurePosixPath(name).with_suffix(".webp").name
                _write_preview(frames_dir / name, previews_dir / preview, preview_size)
                site_frames.append({**entry, "png": f"frames/{name}",
                                    "preview": f"previews/{preview}",
                                    "batch": f"batches/{batch}"})
                done += 1
                if on_progress is not None:
                    on_progress(0.95 * done / len(entries))
    site_frames.sort(key=lambda e: e["index"])
    sprite = _write_sprite(root, site_frames, engine)
    manifest = {
        **{k: v for k, v in engine.items() if k not in {"frames", "batches"}},
        **(extra or {}),
        "batches": [{"file": f"batches/{_safe_name(b)}",
                     "bytes": (root / "batches" / _safe_name(b)).stat().st_size}
                    for b in engine["batches"]],
        "preview_size": preview_size,
        "sprite": sprite,
        "frames": site_frames,
    }
    write_json_atomic(root / "manifest.json", manifest)
    if on_progress is not None:
        on_progress(1.0)
    return manifest


def _safe_name(name: str) -> str:
    """A bare file name from a manifest: no folders, nothing hidden."""
    if not name or PurePosixPath(name).name != name or name.startswith("."):
        raise FramesError(f"Unexpected file name in the frames manifest: {name!r}.")
    return name


def _write_preview(src: Path, dest: Path, size: int) -> None:
    with Image.open(src) as image:
        image = image.convert("RGBA")
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        image.save(dest, "WEBP", quality=PREVIEW_QUALITY, method=4)


def _write_sprite(root: Path, frames: list[dict[str, Any]],
                  engine: dict[str, Any]) -> dict[str, Any]:
    """A grid of evenly spaced frames of the middle row: one turn in one image."""
    rows = int(engine.get("rows", 1))
    middle = rows // 2
    row = [f for f in frames if int(f.get("row", 0)) == middle] or frames
    count = min(SPRITE_FRAMES, len(row))
    chosen = [row[i * len(row) // count] for i in range(count)]
    cell = min(SPRITE_CELL, int(engine["width"]))
    columns = math.ceil(math.sqrt(count))
    grid_rows = math.ceil(count / columns)
    sheet = Image.new("RGBA", (columns * cell, grid_rows * cell), (0, 0, 0, 0))
    for i, frame in enumerate(chosen):
        with Image.open(root / frame["png"]) as image:
            tile = image.convert("RGBA")
            tile.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            sheet.paste(tile, ((i % columns) * cell, (i // columns) * cell))
    sheet.save(root / "sprite.webp", "WEBP", quality=PREVIEW_QUALITY, method=4)
    return {"file": "sprite.webp", "columns": columns, "rows": grid_rows,
            "cell_width": cell, "cell_height": cell, "row": middle,
            "frames": [f["index"] for f in chosen]}
