"""Helpers for the job tests: storage folders for this test (and its worker), products
with real photo files, a finished job's real frames."""

from __future__ import annotations

import io
import json
import tempfile
import uuid
import zipfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from nerfsite.files import frame_storage, photo_storage
from pipeline.delivery.previews import build_site_frames
from pipeline.delivery.storage import job_frames_relpath, publish_job_frames
from pipeline.models import Job
from products.models import Photo, Product

STORAGE_SETTINGS = ("NERF_DATA_ROOT", "FRAME_STORAGE_PATH", "MODEL_STORAGE_PATH")


@pytest.fixture
def storage(settings, tmp_path) -> dict[str, str]:
    """Job workspaces, frames and models under tmp_path, here and in a worker started with
    the returned environment."""
    env = {}
    for name in STORAGE_SETTINGS:
        path = tmp_path / name.lower()
        path.mkdir()
        setattr(settings, name, path)
        env[name] = str(path)
    frames_on_disk(settings, Path(env["FRAME_STORAGE_PATH"]))
    return env


def frames_on_disk(settings, location: Path) -> None:
    """The "frames" storage in `location`, served by the site at FRAME_URL."""
    settings.STORAGES = {**settings.STORAGES, "frames": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": location, "base_url": settings.FRAME_URL,
                    "allow_overwrite": True}}}


def frames_dir(job: Job) -> Path:
    """The job's published frames folder, with the frames storage on disk."""
    return Path(frame_storage.path(job_frames_relpath(job)))


def add_photo(product: Product, data: bytes, name: str, position: int) -> Photo:
    import hashlib

    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    stored = photo_storage.save(f"products/{product.pk}/{uuid.uuid4().hex}.png", ContentFile(data))
    return Photo.objects.create(
        product=product, image=stored, original_name=name, byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), position=position, width=width,
        height=height)


def add_photos_from(product: Product, folder: Path) -> list[Photo]:
    start = product.photos.count()
    return [add_photo(product, path.read_bytes(), path.name, start + i)
            for i, path in enumerate(sorted(folder.glob("*.png")))]


def noise_png(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A photo of nothing COLMAP can match: independent noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def delete_photo_files(product: Product) -> None:
    for photo in product.photos.all():
        photo.image.delete(save=False)


def drain_queue() -> list[dict]:
    """The tasks waiting in the broker the settings name (ORM or Redis), taken off it."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker, tasks = get_broker(), []
    while batch := broker.dequeue():
        for ack_id, payload in batch:
            tasks.append(SignedPackage.loads(payload))
            broker.acknowledge(ack_id)
    return tasks


def finished_frames(job: Job, *, rows: int = 2, per_row: int = 6, size: int = 32) -> None:
    """The engine's output for `job` (batches + manifest), turned into the site's frames
    and published to the frames storage, as the worker does."""
    with tempfile.TemporaryDirectory() as scratch:
        build_engine_frames(Path(scratch), rows=rows, per_row=per_row, size=size)
        publish_job_frames(job, Path(scratch))


def build_engine_frames(root: Path, *, rows: int, per_row: int, size: int) -> None:
    (root / "batches").mkdir(parents=True)
    frames = []
    with zipfile.ZipFile(root / "batches" / "batch_00.zip", "w") as archive:
        for row in range(rows):
            for i in range(per_row):
                index = row * per_row + i
                image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
                image.paste((200, 40 * i % 255, 90, 255), (8, 8, 24, 24))
                out = io.BytesIO()
                image.save(out, "PNG")
                name = f"frame_{index:04d}.png"
                archive.writestr(name, out.getvalue())
                # Stored out of azimuth order on purpose: the viewer gets them sorted.
                frames.append({"index": index, "file": name, "batch": "batch_00.zip",
                               "row": row, "azimuth_deg": (360 / per_row) * ((i * 5) % per_row),
                               "elevation_deg": 10.0 + 20 * row})
    (root / "batches" / "manifest.json").write_text(json.dumps({
        "count": len(frames), "frames_per_row": per_row, "rows": rows, "width": size,
        "height": size, "batches": ["batch_00.zip"], "frames": frames}))
    build_site_frames(root)
