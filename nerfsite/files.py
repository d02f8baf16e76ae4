"""The site's named storages: "photos" (private) and "frames" (public), as configured in
settings.STORAGES (on disk, or S3-compatible storage through django-storages)."""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty


class NamedStorage(LazyObject):
    """storages[alias], looked up on first use rather than at import, so that models can
    name it and a change of STORAGES (tests' settings) reaches them, as Django does for
    default_storage."""

    def __init__(self, alias: str) -> None:
        super().__init__()
        self.__dict__["alias"] = alias

    def _setup(self) -> None:
        self._wrapped = storages[self.alias]


photo_storage = NamedStorage("photos")
frame_storage = NamedStorage("frames")


@cache
def frame_origin() -> str | None:
    """The origin frames are loaded from when it is not this site's: the frames bucket, its
    custom domain or a CDN (an absolute FRAME_URL). Read from the storage's own URLs, so
    the Content-Security-Policy admits exactly where they are."""
    parts = urlsplit(frame_storage.url("x"))
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else None


@receiver(setting_changed, dispatch_uid="nerfsite.files.reset_named_storages")
def reset_named_storages(*, setting: str, **kwargs) -> None:
    if setting == "STORAGES":
        for named in (photo_storage, frame_storage):
            named._wrapped = empty
        frame_origin.cache_clear()
