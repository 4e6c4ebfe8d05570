"""Fleet map data route; included under /api/ (so /api/fleet/map/)."""

from django.urls import path

from fleet.api.map import FleetMapApi

urlpatterns = [
    path("fleet/map/", FleetMapApi.as_view(), name="fleet-map-data"),
]
