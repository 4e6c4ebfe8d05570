from django.urls import path

from fleet.api.plans import PlanDetailApi, PlanListCreateApi, PlanLockApi, PlanPublishApi

urlpatterns = [
    path("plans/", PlanListCreateApi.as_view(), name="fleet-plans"),
    path("plans/<int:pk>/", PlanDetailApi.as_view(), name="fleet-plan"),
    path("plans/<int:pk>/locks/", PlanLockApi.as_view(), name="fleet-plan-locks"),
    path("plans/<int:pk>/publish/", PlanPublishApi.as_view(), name="fleet-plan-publish"),
]
