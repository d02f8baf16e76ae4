from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.static import serve

from pipeline.views import frame_file, generate, usage

from .api import api
from .health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="products:list", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("accounts.urls")),
    # Pipeline's page under the product's URL; products itself knows nothing of jobs.
    path("products/<int:product_pk>/generate/", generate, name="generate"),
    path("products/", include("products.urls")),
    path("jobs/", include("pipeline.urls")),
    path("usage/", usage, name="usage"),
]

if settings.FRAME_URL.startswith("/"):
    # Finished frames, unless FRAME_URL points at a CDN or web server that serves them.
    urlpatterns += [
        path(f"{settings.FRAME_URL.strip('/')}/<path:path>", frame_file, name="frame_file"),
    ]

if settings.DEBUG:
    # Uploaded photos and frames; in production a web server or object store serves them.
    urlpatterns += [
        path("media/<path:path>", serve, {"document_root": settings.MEDIA_ROOT}),
    ]
