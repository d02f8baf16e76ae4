"""The job workspace layout, identical on local disk and on the Modal volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def images_zip(self) -> Path:
        return self.root / "images.zip"

    @property
    def colmap_dir(self) -> Path:
        return self.root / "colmap"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def transforms_json(self) -> Path:
        return self.dataset_dir / "transforms.json"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def object_json(self) -> Path:
        return self.model_dir / "object.json"

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def manifest_json(self) -> Path:
        return self.frames_dir / "manifest.json"

    @property
    def progress_json(self) -> Path:
        return self.root / "progress.json"

    def ensure(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
