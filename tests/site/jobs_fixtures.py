"""Helpers for the job tests: storage folders for this test (and its worker), products
with real photo files."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from nerfsite.files import frame_storage, photo_storage
from pipeline.models import Job
from pipeline.storage import job_frames_relpath
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
