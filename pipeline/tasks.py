"""Where the job task answered before pipeline was grouped into packages. django-q2
keeps a queued task's or a schedule's function as a dotted path, so pipeline.tasks.* must
still resolve for those made earlier; new ones name pipeline.jobs.tasks.* (and the schedules
are corrected after the next migrate)."""

from pipeline.jobs.tasks import run_job

__all__ = ["run_job"]
