"""Where the recovery schedules answered before pipeline was grouped into packages. django-q2
keeps a queued task's or a schedule's function as a dotted path, so pipeline.recovery.* must
still resolve for those made earlier; new ones name pipeline.jobs.recovery.* (and the schedules
are corrected after the next migrate)."""

from pipeline.jobs.recovery import recover_stale_jobs, resend_lost_tasks

__all__ = ["recover_stale_jobs", "resend_lost_tasks"]
