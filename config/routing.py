"""Websocket routes; each domain app adds its consumers here."""

from django.urls import path

from core.consumers import PingConsumer
from dicom.consumers import UnitQCConsumer
from fleet.consumers import FleetMapConsumer
from telerad.consumers import ReadingConsumer

websocket_urlpatterns = [
    path("ws/ping/", PingConsumer.as_asgi()),
    path("ws/units/<int:unit_id>/qc/", UnitQCConsumer.as_asgi()),
    path("ws/reading/", ReadingConsumer.as_asgi()),
    path("ws/fleet/map/", FleetMapConsumer.as_asgi()),
]
