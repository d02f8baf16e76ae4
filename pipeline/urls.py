from django.urls import path

from . import views

app_name = "pipeline"
urlpatterns = [
    path("<uuid:pk>/", views.JobDetailView.as_view(), name="job"),
]
