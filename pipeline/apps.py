from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PipelineConfig(AppConfig):
    name = "pipeline"
    verbose_name = "Pipeline"

    def ready(self) -> None:
        from .schedules import ensure_schedules

        # After django_q's tables exist: sender=self runs once per migrate, after ours.
        post_migrate.connect(ensure_schedules, sender=self,
                             dispatch_uid="pipeline.ensure_schedules")
