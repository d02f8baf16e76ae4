from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from pipeline.views import frame_file, generate, usage

from .api import api
from .health import healthz

# Requests Django cannot read (too large, too many files, …): a 4xx that says why.
handler400 = "nerfsite.client_errors.bad_request"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="products:list", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("accounts.auth_urls")),
    path("notifications/", include("notifications.urls")),
    # Pipeline's page under the product's URL; products itself knows nothing of jobs.
    path("products/<int:product_pk>/generate/", generate, name="generate"),
    path("products/", include("products.urls")),
    path("jobs/", include("pipeline.urls")),
    path("usage/", usage, name="usage"),
]

if settings.FRAME_URL.startswith("/"):
    # Finished frames on this machine's disk, unless FRAME_URL points at a CDN or web
    # server that serves them. Photos are private: only products.views.photo_file serves
    # them, to their owner.
    urlpatterns += [
        path(f"{settings.FRAME_URL.strip('/')}/<path:path>", frame_file, name="frame_file"),
    ]
