from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "product", "status", "stage", "progress_percent", "backend",
                    "preset", "created_at"]
    list_filter = ["status", "stage", "backend", "preset"]
    search_fields = ["id", "product__name", "product__sku", "message", "error"]
    list_select_related = ["product"]
    date_hierarchy = "created_at"
    raw_id_fields = ["product"]
    readonly_fields = [
        "id", "status", "stage", "stage_progress", "progress", "message", "eta_seconds",
        "colmap_started_at", "colmap_finished_at", "train_started_at", "train_finished_at",
        "render_started_at", "render_finished_at", "finalize_started_at",
        "finalize_finished_at", "estimated_cost", "actual_cost", "error", "attempts",
        "created_at", "updated_at", "started_at", "finished_at",
    ]

    @admin.display(description="Progress", ordering="progress")
    def progress_percent(self, job: Job) -> str:
        return f"{job.progress:.0%}"
