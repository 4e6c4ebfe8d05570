"""Fleet API under /api/: the register (units/, ...), units/<id>/telemetry/, fleet/map/."""

from django.urls import include, path

urlpatterns = [
    path("", include("fleet.api.register_urls")),
    path("", include("fleet.api.telemetry_urls")),
    path("", include("fleet.api.map_urls")),
    path("", include("fleet.api.requests_urls")),
    path("", include("fleet.api.plans_urls")),
    path("", include("fleet.api.surge_urls")),
    path("", include("fleet.api.contracts_urls")),
    path("", include("fleet.api.withdrawal_urls")),
]
