"""Unit withdrawal API routes (under /api/)."""

from django.urls import path

from fleet.api.withdrawal import RegionExitApi, UnitWithdrawalListApi, UnitWithdrawApi

urlpatterns = [
    path("units/<int:pk>/withdraw/", UnitWithdrawApi.as_view(), name="fleet-unit-withdraw"),
    path("units/<int:pk>/withdrawals/", UnitWithdrawalListApi.as_view(), name="fleet-unit-withdrawals"),
    path("regions/<str:region_code>/end-service/", RegionExitApi.as_view(), name="fleet-region-exit"),
]
