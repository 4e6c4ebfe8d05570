from django.urls import path

from fleet.api.plans import PlanDetailApi, PlanListCreateApi

urlpatterns = [
    path("plans/", PlanListCreateApi.as_view(), name="fleet-plans"),
    path("plans/<int:pk>/", PlanDetailApi.as_view(), name="fleet-plan"),
]
