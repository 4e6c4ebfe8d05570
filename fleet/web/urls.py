"""Fleet pages; included at the site root (config/urls.py)."""

from django.urls import path

from fleet.web import views

urlpatterns = [
    path("fleet/map/", views.fleet_map, name="fleet-map"),
    path("fleet/units/<int:unit_id>/day/<str:day>/", views.unit_day_view, name="fleet-unit-day"),
]
