"""Fleet telemetry API routes."""

from django.urls import path

from fleet.api.telemetry import TelemetryBatchApi

urlpatterns = [
    path("units/<int:unit_id>/telemetry/", TelemetryBatchApi.as_view(), name="unit-telemetry"),
]
