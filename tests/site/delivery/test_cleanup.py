"""The cleanup schedule deletes only workspaces of jobs finished long enough ago."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pipeline.backends.local import LocalBackend
from pipeline.delivery.cleanup import cleanup_workspaces
from pipeline.delivery.storage import job_model_dir
from pipeline.models import Job
from products.models import Product
from tests.site.jobs_fixtures import frames_dir, storage

pytestmark = pytest.mark.django_db
__all__ = ["storage"]


def test_cleanup_removes_only_old_finished_workspaces(django_user_model, storage, settings):
    owner = django_user_model.objects.create_user("shop")
    backend = LocalBackend()
    old = timezone.now() - timedelta(hours=settings.MODAL_VOLUME_CLEANUP_HOURS + 1)
    recent = timezone.now() - timedelta(hours=1)

    def job(name: str, status: str, finished) -> Job:
        product = Product.objects.create(owner=owner, name=name, sku=name)
        job = Job.objects.create(product=product, status=status, finished_at=finished)
        for folder in (backend.workspace(str(job.pk)) / "model", frames_dir(job),
                       job_model_dir(job)):
            folder.mkdir(parents=True)
            (folder / "file").write_text(name)
        return job

    old_done = job("old-done", "succeeded", old)
    old_failed = job("old-failed", "failed", old)
    old_cancelled = job("old-cancelled", "cancelled", old)
    recent_done = job("recent-done", "succeeded", recent)
    running = job("running", "running", None)
    # A job queued again long after it ended: its workspace is about to be used.
    requeued = job("requeued", "queued", old)
    stranger = backend.workspace("00000000-0000-0000-0000-000000000001")
    stranger.mkdir(parents=True)  # no job in this database: not ours to judge

    deleted = cleanup_workspaces()

    assert sorted(deleted) == sorted(str(j.pk) for j in (old_done, old_failed, old_cancelled))
    for j in (old_done, old_failed, old_cancelled):
        assert not backend.workspace_exists(str(j.pk))
    for j in (recent_done, running, requeued):
        assert backend.workspace_exists(str(j.pk))
    assert stranger.exists()
    for j in Job.objects.all():  # collected frames and kept models are never touched
        assert (frames_dir(j) / "file").exists() and (job_model_dir(j) / "file").exists()
    assert cleanup_workspaces() == []
