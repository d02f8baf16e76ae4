"""The masks the shop owner sees: an overlay per trained photo, flagged where its mask lost
part of the product or kept the table. On the synthetic scene's true masks, two of them
spoiled the way GrabCut spoils masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion

from pipeline.engine.mask_review import MASKS_JSON, THUMB_LONG_SIDE, review_masks
from pipeline.engine.workspace import Workspace
from tests.engine.test_compare import scene, ws  # noqa: F401 (fixtures)


@pytest.fixture
def spoiled(ws: Workspace, tmp_path: Path) -> tuple[Workspace, list[str]]:  # noqa: F811
    """A copy of the workspace whose 2nd mask lost most of the product and whose 3rd kept
    a table across the photo's bottom."""
    copy = Workspace(tmp_path / "ws")
    shutil.copytree(ws.root, copy.root)
    masks = sorted((copy.dataset_dir / "masks").glob("*.png"))
    lost = np.asarray(Image.open(masks[1])).copy()
    ys, xs = np.nonzero(lost > 127)
    lost[ys.min() + (ys.max() - ys.min()) // 4:] = 0  # only the top quarter is left
    Image.fromarray(lost).save(masks[1])
    table = np.asarray(Image.open(masks[2])).copy()
    table[int(table.shape[0] * 0.7):] = 255
    Image.fromarray(table).save(masks[2])
    return copy, [m.stem for m in masks]


def test_each_trained_photo_gets_an_overlay_and_the_spoiled_masks_are_flagged(spoiled):
    review, stems = spoiled
    doc = review_masks(review)
    assert doc == json.loads((review.frames_dir / "compare" / MASKS_JSON).read_text())
    entries = doc["masks"]
    assert [Path(e["photo"]).stem for e in entries] == stems  # 6 masks, 8 photos
    flags = [e["flag"] for e in entries]
    assert flags == [None, "too_little", "edge", None, None, None], entries
    assert all(e["advice"] for e in entries if e["flag"]) and not entries[0]["advice"]

    # The overlay: the product as shot, the background dimmed and tinted.
    first = entries[0]
    with Image.open(review.frames_dir / "compare" / first["file"]) as img:
        overlay = np.asarray(img.convert("RGB"), dtype=float)
    assert max(overlay.shape[:2]) <= THUMB_LONG_SIDE
    with Image.open(review.dataset_dir / "masks" / f"{stems[0]}.png") as m, \
            Image.open(review.dataset_dir / "images" / first["photo"]) as p:
        size = (overlay.shape[1], overlay.shape[0])
        mask = np.asarray(m.convert("L").resize(size)) > 127
        photo = np.asarray(p.convert("RGB").resize(size), dtype=float)
    inside, outside = binary_erosion(mask, iterations=3), ~binary_dilation(mask, iterations=3)
    assert np.abs(overlay[inside] - photo[inside]).mean() < 25  # away from the outline
    assert overlay[outside][:, 0].mean() < 0.6 * photo[outside][:, 0].mean() + 30
    assert overlay[outside][:, 2].mean() > overlay[outside][:, 0].mean()  # tinted blue


def test_no_masks_means_no_review(scene, tmp_path):  # noqa: F811
    bare = Workspace(tmp_path / "bare")
    scene.write_ground_truth_workspace(bare.root)
    assert review_masks(bare) is None
    assert not (bare.frames_dir / "compare" / MASKS_JSON).exists()
