from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.utils.html import format_html, format_html_join

from products.admin import ProductAdmin
from products.models import Product

from .jobs import selectors, services
from .models import Job, Video


class ProgressFilter(admin.SimpleListFilter):
    title = "progress"
    parameter_name = "progress"

    def lookups(self, request, model_admin):
        return [("none", "Not started"), ("partly", "Under way"), ("done", "Complete")]

    def queryset(self, request, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() == "none":
            return queryset.filter(progress=0)
        if self.value() == "partly":
            return queryset.filter(progress__gt=0, progress__lt=1)
        if self.value() == "done":
            return queryset.filter(progress=1)
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "product", "status", "stage", "progress_percent", "backend",
                    "gpu_type", "preset", "cost", "created_at"]
    list_filter = ["status", "stage", "backend", ProgressFilter, "preset", "gpu_type"]
    search_fields = ["id", "product__name", "product__sku", "message", "error"]
    list_select_related = ["product"]
    date_hierarchy = "created_at"
    actions = ["retry_jobs", "cancel_jobs"]
    change_list_template = "admin/pipeline/job/change_list.html"
    # A job is driven by the worker: every field is read-only here; change it through the
    # actions (retry, cancel), which go through pipeline.jobs.services.
    fields = [
        "id", "product", "source_job", "status", "stage", "stage_progress", "progress",
        "message", "error", "eta_seconds", "backend", "gpu_type", "preset", "iterations",
        "frame_count", "frame_size", "frame_rows", "frame_fill", "stage_timings",
        "estimated_cost", "actual_cost", "gpu_seconds", "attempts", "task_id", "heartbeat_at",
        "created_at", "updated_at", "started_at", "finished_at", "metrics", "comparison",
        "stage_log", "backend_state",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # jobs start from the product pages, the API or the products action

    def has_delete_permission(self, request, obj: Job | None = None) -> bool:
        return obj is None or not obj.is_active

    @admin.display(description="Progress", ordering="progress")
    def progress_percent(self, job: Job) -> str:
        return f"{job.progress:.0%}"

    @admin.display(description="Cost (USD)", ordering="actual_cost")
    def cost(self, job: Job) -> str:
        if job.actual_cost is not None:
            return f"{job.actual_cost:.4f}"
        return f"≈ {job.estimated_cost:.4f}" if job.estimated_cost is not None else "—"

    @admin.display(description="Stage timings")
    def stage_timings(self, job: Job) -> str:
        rows = []
        for stage, start, end in job.stage_times():
            took = f"{(end - start).total_seconds():.0f} s" if start and end else (
                "running" if start else "—")
            rows.append((stage, start or "—", took))
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.action(description="Retry the selected failed or cancelled jobs")
    def retry_jobs(self, request, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, services.job_retry, "Queued again")

    @admin.action(description="Cancel the selected queued or running jobs")
    def cancel_jobs(self, request, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, services.job_cancel, "Cancelled")

    def _each(self, request, queryset, action, done: str) -> None:
        ok = 0
        for job in queryset.select_related("product"):
            try:
                action(job)
                ok += 1
            except services.JobError as exc:
                self.message_user(request, f"{job.product.name}: {exc}", messages.WARNING)
        if ok:
            self.message_user(request, f"{done}: {ok} job{'s' if ok != 1 else ''}.",
                              messages.SUCCESS)

    def changelist_view(self, request, extra_context=None):
        usage = selectors.job_usage(jobs=Job.objects.all())
        return super().changelist_view(request, extra_context={
            **(extra_context or {}), "usage_rows": usage["rows"][:12], "usage_totals": usage})


class ProductWithJobsAdmin(ProductAdmin):
    """The products admin with their job count and a Generate action."""

    list_display = [*ProductAdmin.list_display[:-1], "job_count", "created_at"]
    actions = ["start_jobs"]

    def get_queryset(self, request) -> QuerySet[Product]:
        return super().get_queryset(request).annotate(jobs_n=Count("jobs", distinct=True))

    @admin.display(description="Jobs", ordering="jobs_n")
    def job_count(self, product: Product) -> int:
        return product.jobs_n

    @admin.action(description="Generate 360° (standard preset) for the selected products")
    def start_jobs(self, request, queryset: QuerySet[Product]) -> None:
        started = 0
        for product in queryset:
            try:
                services.job_start(product, services.JobOptions())
                started += 1
            except services.JobError as exc:
                self.message_user(request, f"{product.name}: {exc}", messages.WARNING)
        if started:
            self.message_user(request, f"Started {started} job{'s' if started != 1 else ''}; "
                              "they run side by side up to the worker count.",
                              messages.SUCCESS)


admin.site.unregister(Product)
admin.site.register(Product, ProductWithJobsAdmin)


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    """Turntable videos, read-only: the worker makes them, and the job's page (or the API)
    asks for them through pipeline.videos.services."""

    list_display = ["id", "job", "format", "background", "status", "progress", "size",
                    "created_at", "finished_at"]
    list_filter = ["status", "format"]
    search_fields = ["id", "job__id", "job__product__name", "error"]
    list_select_related = ["job", "job__product"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
