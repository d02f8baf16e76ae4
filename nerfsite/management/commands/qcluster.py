"""django-q2's `qcluster`, whose processes all die with its main process.

django-q2 forks a sentinel, which forks the workers, a monitor and a pusher; none of them
watches its parent, so a main process killed with SIGKILL used to leave them running jobs
and schedules as orphans. Each now dies with the process that forked it, and an engine
stage with the worker that started it (pipeline.engine.lifeline). This command replaces
django-q2's own because nerfsite comes before django_q in INSTALLED_APPS.
"""

from __future__ import annotations

from django_q.management.commands.qcluster import Command as QclusterCommand

from pipeline.engine.lifeline import children_die_with_parent


class Command(QclusterCommand):
    def handle(self, *args, **options) -> None:
        children_die_with_parent()  # before the cluster forks its sentinel
        super().handle(*args, **options)
