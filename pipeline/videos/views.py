"""The job page's turntable videos: request one (a form POST), and the list of the job's
videos that the page polls while one is being made (static/js/job-videos.js)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from pipeline.errors import JobError
from pipeline.jobs import lookups
from pipeline.models import Job
from pipeline.videos import selectors as video_selectors
from pipeline.videos import services as video_services
from pipeline.videos.forms import VideoForm

CARD_ANCHOR = "#video"


def video_list_context(job: Job) -> dict[str, Any]:
    """What the Video card shows: the form, and the card's data (videos.selectors)."""
    return {"form": VideoForm(), **video_selectors.video_card(job=job)}


@login_required
@require_POST
def video_request(request: HttpRequest, pk) -> HttpResponse:
    job = lookups.job_get_visible(user=request.user, pk=pk)
    form = VideoForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{form.fields[field].label}: {' '.join(errors)}")
    else:
        try:
            video = video_services.video_request(job=job, fmt=form.cleaned_data["format"],
                                                 background=form.cleaned_data["background"])
        except JobError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "The video is ready below." if not video.is_active
                             and video.status == video.Status.SUCCEEDED
                             else "Making the video; it appears below when it is ready.")
    return redirect(job.get_absolute_url() + CARD_ANCHOR)


@login_required
def job_videos(request: HttpRequest, pk) -> HttpResponse:
    """The card's list of videos alone, for the page to refresh while one is made."""
    job = lookups.job_get_visible(user=request.user, pk=pk)
    return render(request, "pipeline/_video_list.html", {"video": video_list_context(job)})
