"""Peer review URLs: the reviewer's under /api/reading/, QC's under /api/quality/ (config/urls.py)."""

from django.urls import path

from telerad.api.peer import (
    PeerReviewDetailApi,
    PeerReviewPickApi,
    PeerReviewQueueApi,
    PeerReviewRatesApi,
    PeerReviewScoreApi,
)

urlpatterns = [
    path("peer-reviews/", PeerReviewQueueApi.as_view(), name="api-peer-reviews"),
    path("peer-reviews/<int:pk>/", PeerReviewDetailApi.as_view(), name="api-peer-review"),
    path("peer-reviews/<int:pk>/score/", PeerReviewScoreApi.as_view(), name="api-peer-review-score"),
]

quality_urlpatterns = [
    path("peer-reviews/picks/", PeerReviewPickApi.as_view(), name="api-peer-review-picks"),
    path("peer-reviews/rates/", PeerReviewRatesApi.as_view(), name="api-peer-review-rates"),
]
