"""The site's named storages: "photos" (private) and "frames" (public), as configured in
settings.STORAGES (on disk, or S3-compatible storage through django-storages)."""

from __future__ import annotations

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


@receiver(setting_changed, dispatch_uid="nerfsite.files.reset_named_storages")
def reset_named_storages(*, setting: str, **kwargs) -> None:
    if setting == "STORAGES":
        for named in (photo_storage, frame_storage):
            named._wrapped = empty
