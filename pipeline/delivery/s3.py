"""Frames in a public S3-compatible bucket (settings.STORAGES["frames"] when
FRAMES_S3_BUCKET is set; needs the `s3` extra). Imported only then."""

from __future__ import annotations

from typing import Any

from storages.backends.s3 import S3Storage

from pipeline.delivery.storage import frame_cache_control


class FrameS3Storage(S3Storage):
    """Each object carries the Cache-Control the site would send for it, so a browser or
    CDN in front of the bucket keeps the immutable files for good."""

    def get_object_parameters(self, name: str) -> dict[str, Any]:
        return {**super().get_object_parameters(name), "CacheControl": frame_cache_control(name)}
