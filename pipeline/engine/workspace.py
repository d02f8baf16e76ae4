"""The job workspace layout, identical on local disk and on the Modal volume.

The only place a workspace path is named. The engine's stages use `Workspace`'s
properties; the backends, which see the workspace from outside (a local folder, or a
path on the Modal volume), join the relative paths below onto their own root. Also the
one atomic JSON writer that every file here, progress.json included, is written with.

    jobs/{job_id}/
      images.zip       the photos, as validated and normalized
      colmap/          the pose stage's own files (pipeline.engine.colmap)
      dataset/         transforms.json, images/, the training set, the point clouds
      model/           nerfacto/ (config + checkpoints), object.json, train.json, loss.json
      frames/          batch_NN.zip, manifest.json, compare/ (photos beside renders)
      progress.json    the running stage's state (pipeline.engine.progress)
      logs/            the local backend's stage logs
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

# Where the workspaces live under NERF_DATA_ROOT, or on the Modal volume.
JOBS_DIR = "jobs"

# Paths relative to a job's workspace.
IMAGES_ZIP = "images.zip"
PROGRESS_JSON = "progress.json"
LOGS_DIR = "logs"
COLMAP_DIR = "colmap"
DATASET_DIR = "dataset"
IMAGES_SUBDIR = "images"
"""dataset/images/: the photos the poses were found for (paths in transforms.json are
relative to dataset/)."""
DATASET_IMAGES_DIR = f"{DATASET_DIR}/{IMAGES_SUBDIR}"
TRANSFORMS_NAME = "transforms.json"
TRANSFORMS_JSON = f"{DATASET_DIR}/{TRANSFORMS_NAME}"
TRANSFORMS_TRAIN_NAME = "transforms_train.json"
TRANSFORMS_TRAIN_JSON = f"{DATASET_DIR}/{TRANSFORMS_TRAIN_NAME}"
MODEL_DIR = "model"
OBJECT_JSON = f"{MODEL_DIR}/object.json"
METHOD_NAME = "nerfacto"
"""nerfstudio's method, which also names the folder of its config and checkpoints."""
METHOD_DIR = f"{MODEL_DIR}/{METHOD_NAME}"
NERF_CONFIG = f"{METHOD_DIR}/config.yml"
TRAIN_JSON = f"{MODEL_DIR}/train.json"
LOSS_JSON = f"{MODEL_DIR}/loss.json"
HULL_NPZ = f"{MODEL_DIR}/hull.npz"
FRAMES_DIR = "frames"
MANIFEST_NAME = "manifest.json"
MANIFEST_JSON = f"{FRAMES_DIR}/{MANIFEST_NAME}"
COMPARE_SUBDIR = "compare"
COMPARE_DIR = f"{FRAMES_DIR}/{COMPARE_SUBDIR}"

# Names inside those folders.
TRAIN_SUBDIR = "train"
"""dataset/train/: the RGBA photos nerfstudio trains on (paths in transforms_train.json
are relative to dataset/)."""
MASKS_SUBDIR = "masks"
"""dataset/masks/: each photo's product mask."""
SAMPLE_SUBDIR = "sample"
"""dataset/sample/: where the training samples rays."""
SPARSE_POINTS_NAME = "sparse_points.ply"
"""dataset/: all of COLMAP's sparse points, in the normalized frame."""
PRODUCT_POINTS_NAME = "product_points.ply"
"""dataset/: the sparse points the colmap stage found to be the product, a base on a
table included."""
COMPARE_JSON = "compare.json"
"""frames/compare/: the photo-versus-render comparison (pipeline.engine.compare)."""
MASKS_JSON = "masks.json"
"""frames/compare/: the masks' review (pipeline.engine.mask_review)."""
COMPARE_PHOTO_NAME = "photo_{}.jpg"
COMPARE_RENDER_NAME = "render_{}.png"
MASK_OVERLAY_NAME = "mask_{}.jpg"
FRAME_NAME = "frame_{:04d}.png"
BATCH_NAME = "batch_{:02d}.zip"
"""frames/: the frames, zipped in batches."""
BATCH_GLOB = BATCH_NAME.replace("{:02d}", "*")

# What `render` needs from a trained job: kept in MODEL_STORAGE_PATH after training, so a
# job can be rendered again after cleanup (nerfstudio config + checkpoint + object.json
# under model/, and the poses it loads).
MODEL_FILES = (MODEL_DIR, TRANSFORMS_JSON, TRANSFORMS_TRAIN_JSON)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` through a temp file and a rename, so a reader on
    another process, or on the Modal volume, never sees half a document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        if not isinstance(self.root, PurePath):
            object.__setattr__(self, "root", Path(self.root))

    @property
    def images_zip(self) -> Path:
        return self.root / IMAGES_ZIP

    @property
    def colmap_dir(self) -> Path:
        return self.root / COLMAP_DIR

    @property
    def dataset_dir(self) -> Path:
        return self.root / DATASET_DIR

    @property
    def dataset_images_dir(self) -> Path:
        return self.root / DATASET_IMAGES_DIR

    @property
    def transforms_json(self) -> Path:
        return self.root / TRANSFORMS_JSON

    @property
    def transforms_train_json(self) -> Path:
        return self.root / TRANSFORMS_TRAIN_JSON

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def method_dir(self) -> Path:
        return self.root / METHOD_DIR

    @property
    def object_json(self) -> Path:
        return self.root / OBJECT_JSON

    @property
    def train_json(self) -> Path:
        return self.root / TRAIN_JSON

    @property
    def loss_json(self) -> Path:
        return self.root / LOSS_JSON

    @property
    def hull_npz(self) -> Path:
        return self.root / HULL_NPZ

    @property
    def frames_dir(self) -> Path:
        return self.root / FRAMES_DIR

    @property
    def manifest_json(self) -> Path:
        return self.root / MANIFEST_JSON

    @property
    def compare_dir(self) -> Path:
        return self.root / COMPARE_DIR

    @property
    def progress_json(self) -> Path:
        return self.root / PROGRESS_JSON

    @property
    def logs_dir(self) -> Path:
        return self.root / LOGS_DIR

    def ensure(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
