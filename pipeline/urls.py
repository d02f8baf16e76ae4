from django.urls import path

from . import views
from .videos import views as video_views

app_name = "pipeline"
urlpatterns = [
    path("<uuid:pk>/", views.JobDetailView.as_view(), name="job"),
    path("<uuid:pk>/progress/", views.job_progress, name="progress"),
    path("<uuid:pk>/spin.json", views.spin_json, name="spin"),
    path("<uuid:pk>/compare/<int:number>/<slug:kind>/", views.compare_image,
         name="compare_image"),
    path("<uuid:pk>/cancel/", views.cancel, name="cancel"),
    path("<uuid:pk>/retry/", views.retry, name="retry"),
    path("<uuid:pk>/rerender/", views.rerender, name="rerender"),
    path("<uuid:pk>/videos/", video_views.job_videos, name="videos"),
    path("<uuid:pk>/videos/new/", video_views.video_request, name="video_request"),
]
