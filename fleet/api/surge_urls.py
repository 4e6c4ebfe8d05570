"""Incident (emergency surge) API routes (under /api/)."""

from django.urls import path

from fleet.api.surge import IncidentCloseApi, IncidentConfirmApi, IncidentDetailApi, IncidentListCreateApi

urlpatterns = [
    path("incidents/", IncidentListCreateApi.as_view(), name="api-incidents"),
    path("incidents/<int:pk>/", IncidentDetailApi.as_view(), name="api-incident"),
    path("incidents/<int:pk>/confirm/", IncidentConfirmApi.as_view(), name="api-incident-confirm"),
    path("incidents/<int:pk>/close/", IncidentCloseApi.as_view(), name="api-incident-close"),
]
