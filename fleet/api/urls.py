"""Fleet API under /api/: units/, crew/, visits/ (register_urls), units/<id>/telemetry/ (telemetry_urls)."""

from django.urls import include, path

urlpatterns = [
    path("", include("fleet.api.register_urls")),
    path("", include("fleet.api.telemetry_urls")),
]
