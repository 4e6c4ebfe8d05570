"""Service contract and full coverage API routes (under /api/)."""

from django.urls import path

from fleet.api.contracts import CoverageContractsApi, ServiceContractDetailApi, ServiceContractListCreateApi

urlpatterns = [
    path("contracts/", ServiceContractListCreateApi.as_view(), name="fleet-contracts"),
    path("contracts/<int:pk>/", ServiceContractDetailApi.as_view(), name="fleet-contract"),
    path("coverage/contracts/", CoverageContractsApi.as_view(), name="fleet-coverage-contracts"),
]
