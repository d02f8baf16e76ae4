from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import QuerySet
from django.views.generic import DetailView

from .models import Job


def visible_jobs(user) -> QuerySet[Job]:
    qs = Job.objects.select_related("product")
    return qs if user.is_staff else qs.filter(product__owner=user)


class JobDetailView(LoginRequiredMixin, DetailView):
    template_name = "pipeline/job_detail.html"
    context_object_name = "job"

    def get_queryset(self) -> QuerySet[Job]:
        return visible_jobs(self.request.user)
