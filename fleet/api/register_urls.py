"""Fleet register API routes (under /api/)."""

from django.urls import path

from fleet.api.register import (
    CrewCredentialListCreateApi,
    UnitDetailApi,
    UnitLicenceListCreateApi,
    UnitListApi,
    UnitMaintenanceListCreateApi,
    UnitQCListCreateApi,
    UnitStatusChangeListApi,
    UnitTransitionApi,
    VisitCrewApi,
)

urlpatterns = [
    path("units/", UnitListApi.as_view(), name="fleet-units"),
    path("units/<int:pk>/", UnitDetailApi.as_view(), name="fleet-unit"),
    path("units/<int:pk>/transition/", UnitTransitionApi.as_view(), name="fleet-unit-transition"),
    path(
        "units/<int:pk>/status-changes/", UnitStatusChangeListApi.as_view(), name="fleet-unit-status-changes"
    ),
    path("units/<int:pk>/licences/", UnitLicenceListCreateApi.as_view(), name="fleet-unit-licences"),
    path(
        "units/<int:pk>/maintenance-windows/",
        UnitMaintenanceListCreateApi.as_view(),
        name="fleet-unit-maintenance-windows",
    ),
    path("units/<int:pk>/qc/", UnitQCListCreateApi.as_view(), name="fleet-unit-qc"),
    path("crew/<int:pk>/credentials/", CrewCredentialListCreateApi.as_view(), name="fleet-crew-credentials"),
    path("visits/<int:pk>/crew/", VisitCrewApi.as_view(), name="fleet-visit-crew"),
]
