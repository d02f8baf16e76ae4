"""The user's notifications page: the job email setting, webhook endpoints (the secret
shown once), "send test event" and the delivery log. Writes go through services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from . import lookups, selectors, services
from .forms import EndpointForm, NotificationSettingsForm


def render_page(request: HttpRequest, *, endpoint_form: EndpointForm | None = None,
                new_secret: str | None = None, status: int = 200) -> HttpResponse:
    user = request.user
    return render(request, "notifications/settings.html", {
        "settings_form": NotificationSettingsForm(
            instance=selectors.notification_settings_get(user=user)),
        "endpoint_form": endpoint_form or EndpointForm(),
        "endpoints": selectors.endpoint_list(user=user),
        "deliveries": selectors.delivery_list(user=user)[:selectors.DELIVERY_LOG_LENGTH],
        "new_secret": new_secret,
    }, status=status)


@login_required
def notification_settings(request: HttpRequest) -> HttpResponse:
    return render_page(request)


@login_required
@require_POST
def email_settings(request: HttpRequest) -> HttpResponse:
    form = NotificationSettingsForm(request.POST)
    if form.is_valid():
        services.notification_settings_update(
            user=request.user,
            email_on_job_finished=form.cleaned_data["email_on_job_finished"])
        messages.success(request, "Saved.")
    return redirect("notifications:settings")


@login_required
@require_POST
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST)
    if form.is_valid():
        try:
            _, secret = services.webhook_endpoint_create(
                user=request.user, url=form.cleaned_data["url"],
                description=form.cleaned_data["description"])
        except services.NotificationError as exc:
            form.add_error("url", str(exc))
        else:
            return render_page(request, new_secret=secret)
    return render_page(request, endpoint_form=form, status=400)


@login_required
@require_POST
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = lookups.endpoint_get(user=request.user, pk=pk)
    services.webhook_endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Deleted {endpoint.url}; it receives no more events.")
    return redirect("notifications:settings")


@login_required
@require_POST
def endpoint_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = lookups.endpoint_get(user=request.user, pk=pk)
    try:
        services.webhook_test_send(endpoint=endpoint)
    except services.NotificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"A test event is on its way to {endpoint.url}; its "
                                  "delivery shows in the log below.")
    return redirect("notifications:settings")
