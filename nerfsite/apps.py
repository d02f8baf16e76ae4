from django.apps import AppConfig


class NerfsiteConfig(AppConfig):
    """The project package as an app, for its site-wide management commands."""

    name = "nerfsite"
    verbose_name = "Site"
