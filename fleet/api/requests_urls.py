"""Service request and coverage API routes (under /api/)."""

from django.urls import path

from fleet.api.requests import (
    CoverageApi,
    ServiceRequestCancelApi,
    ServiceRequestDeclineApi,
    ServiceRequestDetailApi,
    ServiceRequestListCreateApi,
    ServiceRequestScheduleApi,
    ServiceRequestTransitionApi,
)

urlpatterns = [
    path("requests/", ServiceRequestListCreateApi.as_view(), name="fleet-requests"),
    path("requests/<int:pk>/", ServiceRequestDetailApi.as_view(), name="fleet-request"),
    path("requests/<int:pk>/decline/", ServiceRequestDeclineApi.as_view(), name="fleet-request-decline"),
    path("requests/<int:pk>/cancel/", ServiceRequestCancelApi.as_view(), name="fleet-request-cancel"),
    path(
        "requests/<int:pk>/transition/",
        ServiceRequestTransitionApi.as_view(),
        name="fleet-request-transition",
    ),
    path("requests/<int:pk>/schedule/", ServiceRequestScheduleApi.as_view(), name="fleet-request-schedule"),
    path("coverage/", CoverageApi.as_view(), name="fleet-coverage"),
]
