from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


class NerfsiteConfig(AppConfig):
    """The project package as an app, for its site-wide management commands."""

    name = "nerfsite"
    verbose_name = "Site"

    def ready(self) -> None:
        # Every setup runs migrate (make run/serve, the Procfile's release, the tests'
        # database), so the database cache's table comes with it. This app has no models,
        # so no post_migrate of its own: the receiver hears every app's, and the command
        # does nothing once the table exists (or when the cache is Redis).
        post_migrate.connect(create_cache_table, dispatch_uid="nerfsite.create_cache_table")


def create_cache_table(*, using: str, **kwargs) -> None:
    call_command("createcachetable", database=using, verbosity=0)
