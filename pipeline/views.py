"""Job pages: generate (with the estimate first), a job's status with cancel, retry and
re-render, and usage. They call pipeline.jobs.services; every refusal is shown as a message."""

from __future__ import annotations

import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.files.storage import FileSystemStorage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.generic import DetailView
from django.views.static import serve

from nerfsite.files import frame_storage
from nerfsite.ranges import with_byte_ranges
from products.lookups import product_get_visible
from products.selectors import product_usable_photos

from .delivery.spin import spin_document
from .delivery.storage import SHORT_CACHE, frame_cache_control
from .display import charts, job_display
from .engine.presets import DEFAULT_FILL_PERCENT
from .forms import FrameOptionsForm, GenerateForm
from .jobs import lookups, selectors, services
from .models import Job
from .quality import responses


class JobDetailView(LoginRequiredMixin, DetailView):
    """The job's live progress (the fragment below, refreshed by job-progress.js), then
    its result: the 360° viewer, downloads, the embed snippet and the loss curve."""

    template_name = "pipeline/job_detail.html"
    context_object_name = "job"

    def get_queryset(self):
        return selectors.job_visible_list(user=self.request.user)

    def get_context_data(self, **kwargs):
        job = self.object
        can_rerender = job.status == Job.Status.SUCCEEDED and selectors.model_is_kept(
            job.source_job or job)
        manifest = selectors.finished_manifest(job)
        spin_url = reverse("pipeline:spin", args=[job.pk])
        return super().get_context_data(
            **progress_context(job),
            rerender_form=FrameOptionsForm(initial={
                "frame_count": job.frame_count, "frame_size": job.frame_size,
                "frame_rows": job.frame_rows,
                "frame_fill": job.frame_fill or DEFAULT_FILL_PERCENT}) if can_rerender else None,
            manifest=manifest,
            spin_url=spin_url if manifest else None,
            embed_snippet=embed_snippet(self.request, spin_url) if manifest else None,
            compared_views=job_display.comparison_views(job) if manifest else [],
            loss_curve=charts.loss_curve_svg(job.metrics.get("train", {}).get("loss_curve", [])),
            downloads=selectors.manifest_urls(job, manifest).batches if manifest else [],
            **kwargs)


def progress_context(job: Job) -> dict:
    return {
        "bars": job_display.stage_bars(job),
        "advice": job_display.failure_advice(job),
        "latest_messages": job_display.latest_messages(job),
        "can_cancel": job.is_active,
        "can_retry": job.status in (Job.Status.FAILED, Job.Status.CANCELLED),
    }


def embed_snippet(request: HttpRequest, spin_url: str) -> str:
    """HTML a storefront pastes to show the spin: a container and the viewer's script."""
    script = request.build_absolute_uri(static("js/spin-viewer.js"))
    return (f'<div data-spin-viewer data-src="{request.build_absolute_uri(spin_url)}" '
            'style="max-width: 640px"></div>\n'
            f'<script src="{script}" defer></script>')


def frame_file(request: HttpRequest, path: str) -> HttpResponse:
    """A finished job's frame, preview, sprite or zip batch (see pipeline.delivery.previews), when
    the frames storage is on this machine's disk; a bucket serves its own.

    Public like spin.json: the path holds the job's random UUID. Files never change once
    published, so browsers and CDNs may keep them for good (pipeline.delivery.storage).
    """
    if not isinstance(frame_storage, FileSystemStorage):
        raise Http404("Frames are served from their bucket.")
    # Ranges: Safari plays a turntable video only from a server that answers them.
    response = with_byte_ranges(request, serve(request, path,
                                               document_root=frame_storage.location))
    response["Cache-Control"] = frame_cache_control(path)
    public_to_any_origin(response)
    return response


@login_required
def compare_image(request: HttpRequest, pk, number: int, kind: str) -> FileResponse:
    """A photo of the job's comparison, or its render, for the job's owner (and staff)
    only: the photos are private, unlike the frames. Anyone else gets 404."""
    return responses.comparison_image(owned_job(request, pk), number, kind)


@login_required
def job_progress(request: HttpRequest, pk) -> HttpResponse:
    """The progress card alone, for the job page to refresh without a reload."""
    job = owned_job(request, pk)
    return render(request, "pipeline/_job_progress.html", {"job": job, **progress_context(job)})


def spin_json(request: HttpRequest, pk) -> JsonResponse:
    """The viewer's document for a finished job.

    Public by design, like an unlisted video: a storefront page embeds the spin with
    this URL, and the job's random UUID is the only key. Unfinished jobs give 404.
    """
    job = get_object_or_404(Job, pk=pk, status=Job.Status.SUCCEEDED)
    spin = spin_document(job, request.build_absolute_uri)
    if spin is None:
        raise Http404("This job's frames are not available.")
    response = JsonResponse(spin)
    response["Cache-Control"] = SHORT_CACHE
    public_to_any_origin(response)
    return response


def public_to_any_origin(response: HttpResponse) -> None:
    """Let a storefront on any origin read the response (CORS for spin.json's fetch) and
    embed it (CORP, for shops that isolate their pages)."""
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"


def owned_job(request: HttpRequest, pk) -> Job:
    return lookups.job_get_visible(user=request.user, pk=pk)


@login_required
def generate(request: HttpRequest, product_pk: int) -> HttpResponse:
    """GET shows the form with the estimate for the chosen settings ("Update estimate"
    submits by GET); POST starts the job and goes to its page."""
    product = product_get_visible(user=request.user, pk=product_pk)
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = GenerateForm(data, initial={"preset": "standard", "frame_rows": 1})
    estimate = error = None
    if not form.is_bound or form.is_valid():
        try:
            options = form.to_options() if form.is_bound else services.JobOptions()
            estimate = services.job_estimate(product, options)
            if request.method == "POST":
                job = services.job_start(product, options)
                messages.success(request, "Job started. This page shows its progress.")
                return redirect(job)
        except services.JobError as exc:
            error = str(exc)
    return render(request, "pipeline/generate.html", {
        "product": product, "form": form, "estimate": estimate, "error": error,
        "estimate_minutes": math.ceil(estimate.total_seconds / 60) if estimate else None,
        "photo_count": len(product_usable_photos(product=product)),
        "min_photos": selectors.min_photos(),
    })


@login_required
@require_POST
def cancel(request: HttpRequest, pk) -> HttpResponse:
    job = owned_job(request, pk)
    try:
        services.job_cancel(job)
        messages.success(request, "Job cancelled. You can retry it later.")
    except services.JobError as exc:
        messages.error(request, str(exc))
    return redirect(job)


@login_required
@require_POST
def retry(request: HttpRequest, pk) -> HttpResponse:
    job = owned_job(request, pk)
    try:
        services.job_retry(job)
        messages.success(request, "Job queued again; it resumes where it stopped.")
    except services.JobError as exc:
        messages.error(request, str(exc))
    return redirect(job)


@login_required
@require_POST
def rerender(request: HttpRequest, pk) -> HttpResponse:
    job = owned_job(request, pk)
    form = FrameOptionsForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{form.fields[field].label}: {' '.join(errors)}")
        return redirect(job)
    try:
        new = services.job_rerender(job, form.to_options(job.preset))
    except services.JobError as exc:
        messages.error(request, str(exc))
        return redirect(job)
    messages.success(request, "Rendering again from the trained model.")
    return redirect(new)


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """Jobs, GPU minutes and cost per month and GPU type (staff: everyone's)."""
    usage = selectors.job_usage(user=request.user)
    return render(request, "pipeline/usage.html", {"rows": usage["rows"], "totals": usage})
