"""`manage.py jobs`: the latest jobs with their status, stage and progress."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from pipeline.models import Job


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Command(BaseCommand):
    help = "List jobs with their status, stage, progress and ETA (newest first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--status", choices=Job.Status.values, help="only this status")
        parser.add_argument("--product", type=int, help="only this product's jobs")
        parser.add_argument("--limit", type=int, default=20, help="how many (default 20)")

    def handle(self, *args, status: str | None, product: int | None, limit: int,
               **options) -> None:
        jobs = Job.objects.select_related("product")
        if status:
            jobs = jobs.filter(status=status)
        if product:
            jobs = jobs.filter(product_id=product)
        rows = [("JOB", "PRODUCT", "STATUS", "STAGE", "PROGRESS", "ETA", "TOOK", "MESSAGE")]
        now = timezone.now()
        for job in jobs[:limit]:
            took = None
            if job.started_at:
                took = ((job.finished_at or now) - job.started_at).total_seconds()
            rows.append((
                str(job.pk)[:8], job.product.name[:24], job.status,
                job.get_stage_display(), f"{job.progress:4.0%}",
                _duration(job.eta_seconds) if job.is_active else "-", _duration(took),
                (job.error or job.message)[:60],
            ))
        if len(rows) == 1:
            self.stdout.write("No jobs.")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths,
                                                                        strict=True)).rstrip())
