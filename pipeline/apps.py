from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PipelineConfig(AppConfig):
    name = "pipeline"
    verbose_name = "Pipeline"

    def ready(self) -> None:
        # Imported here: models and signal receivers need the app registry ready.
        from products.models import SUMMARY_ANNOTATIONS

        from . import checks, receivers  # noqa: F401  (both register on import)
        from .jobs.schedules import ensure_schedules
        from .jobs.selectors import latest_job_annotations

        SUMMARY_ANNOTATIONS.append(latest_job_annotations)

        # After django_q's tables exist: sender=self runs once per migrate, after ours.
        post_migrate.connect(ensure_schedules, sender=self,
                             dispatch_uid="pipeline.ensure_schedules")
