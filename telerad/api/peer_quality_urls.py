"""Mounted at /api/quality/ (config/urls.py): QC officers' peer review endpoints."""

from telerad.api.peer_urls import quality_urlpatterns

urlpatterns = quality_urlpatterns
