"""Where the cleanup schedule answered before pipeline was grouped into packages. django-q2
keeps a queued task's or a schedule's function as a dotted path, so pipeline.cleanup.* must
still resolve for those made earlier; new ones name pipeline.delivery.cleanup.* (and the schedules
are corrected after the next migrate)."""

from pipeline.delivery.cleanup import cleanup_workspaces

__all__ = ["cleanup_workspaces"]
