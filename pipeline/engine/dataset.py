"""WS/dataset/transforms.json in nerfstudio's format, for its own ``nerfstudio-data`` parser.

Poses come in as OpenCV camera-to-world matrices (x right, y down, z forward), the
convention of COLMAP and of our tests; nerfstudio wants OpenGL's (x right, y up, z back).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .workspace import IMAGES_SUBDIR, TRANSFORMS_NAME, write_json_atomic

# Re-exported: the colmap stage imports these names from here.
from .workspace import PRODUCT_POINTS_NAME as PRODUCT_POINTS_NAME
from .workspace import SPARSE_POINTS_NAME as SPARSE_POINTS_NAME

# Right-multiplying a camera-to-world matrix by this flips the camera's y and z axes.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
_PLY_HEADER_END = "end_header"

_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2")


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera with OpenCV's radial-tangential distortion (k1, k2, p1, p2)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k1: float = 0.0
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    def resized(self, width: int, height: int) -> Intrinsics:
        """The same camera for the image resized to width × height.

        Pixel coordinates are continuous with the image corner at 0 (COLMAP's convention),
        so focal lengths and the principal point scale alike; distortion is unitless.
        """
        sx, sy = width / self.width, height / self.height
        return replace(self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy,
                       cx=self.cx * sx, cy=self.cy * sy)

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], float)

    def to_json(self) -> dict[str, float | int]:
        values = (self.fx, self.fy, self.cx, self.cy, self.width, self.height,
                  self.k1, self.k2, self.p1, self.p2)
        return {k: (v if isinstance(v, int) else float(v)) for k, v in
                zip(_INTRINSIC_KEYS, values, strict=True)}


@dataclass(frozen=True)
class Frame:
    """One placed photo: its file name under dataset/images/ and where it was taken."""

    name: str
    c2w: np.ndarray  # 4×4, OpenCV convention, in the normalized frame
    camera: Intrinsics


def transforms_document(frames: Sequence[Frame]) -> dict[str, Any]:
    """The transforms.json document; intrinsics go to the top level when all share one."""
    if not frames:
        raise ValueError("a dataset needs at least one frame")
    shared = len({f.camera for f in frames}) == 1
    doc: dict[str, Any] = {"camera_model": "OPENCV"}
    if shared:
        doc.update(frames[0].camera.to_json())
    doc["frames"] = []
    for frame in frames:
        entry: dict[str, Any] = {
            "file_path": f"{IMAGES_SUBDIR}/{frame.name}",
            "transform_matrix": (np.asarray(frame.c2w, float) @ OPENCV_TO_OPENGL).tolist(),
        }
        if not shared:
            entry.update(frame.camera.to_json())
        doc["frames"].append(entry)
    return doc


def write_transforms(dataset_dir: Path, frames: Sequence[Frame]) -> Path:
    path = Path(dataset_dir) / TRANSFORMS_NAME
    write_json_atomic(path, transforms_document(frames))
    return path


def read_transforms(path: Path) -> list[Frame]:
    """The frames of a transforms.json written by `write_transforms` (OpenCV poses)."""
    doc = json.loads(Path(path).read_text())
    frames = []
    for entry in doc["frames"]:
        src = entry if "fl_x" in entry else doc
        camera = Intrinsics(int(src["w"]), int(src["h"]), src["fl_x"], src["fl_y"],
                            src["cx"], src["cy"], src.get("k1", 0.0), src.get("k2", 0.0),
                            src.get("p1", 0.0), src.get("p2", 0.0))
        c2w = np.asarray(entry["transform_matrix"], float) @ OPENCV_TO_OPENGL
        frames.append(Frame(Path(entry["file_path"]).name, c2w, camera))
    return frames


def write_points_ply(path: Path, points: np.ndarray) -> None:
    """Points (M,3) as an ASCII PLY file, which point-cloud viewers open."""
    header = ("ply\nformat ascii 1.0\n"
              f"element vertex {len(points)}\nproperty float x\nproperty float y\n"
              f"property float z\n{_PLY_HEADER_END}\n")
    path.write_text(header + "".join(f"{x:.5f} {y:.5f} {z:.5f}\n" for x, y, z in points))


def read_points_ply(path: Path) -> np.ndarray:
    """(M,3) the points of a file that `write_points_ply` wrote."""
    _, _, body = path.read_text().partition(f"{_PLY_HEADER_END}\n")
    return np.array(body.split(), float).reshape(-1, 3)
