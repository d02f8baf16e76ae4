from django.contrib import admin

from .models import Event, NotificationSettings, WebhookDelivery, WebhookEndpoint


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ["user", "email_on_job_finished"]
    search_fields = ["user__username", "user__email"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "user", "description", "created_at"]
    search_fields = ["url", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "url", "description", "created_at"]  # never the secret
    readonly_fields = ["user", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # made on the user's page, where the secret is shown once


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = readonly_fields = ["endpoint", "attempt", "outcome", "status_code", "error",
                                "duration_ms", "next_attempt_at", "created_at"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["type", "user", "job", "created_at", "emailed_at"]
    list_filter = ["type"]
    search_fields = ["user__username", "job__id"]
    list_select_related = ["user", "job__product"]
    readonly_fields = ["id", "user", "type", "job", "payload", "created_at", "emailed_at"]
    inlines = [DeliveryInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["event", "endpoint", "attempt", "outcome", "status_code", "duration_ms",
                    "created_at"]
    list_filter = ["outcome"]
    list_select_related = ["event", "endpoint"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
