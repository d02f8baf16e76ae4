from django.urls import path

from . import views

app_name = "notifications"
urlpatterns = [
    path("", views.notification_settings, name="settings"),
    path("email/", views.email_settings, name="email"),
    path("endpoints/", views.endpoint_create, name="endpoint_create"),
    path("endpoints/<int:pk>/delete/", views.endpoint_delete, name="endpoint_delete"),
    path("endpoints/<int:pk>/test/", views.endpoint_test, name="endpoint_test"),
]
