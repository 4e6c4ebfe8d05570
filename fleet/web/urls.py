"""Fleet pages; included at the site root (config/urls.py)."""

from django.urls import path

from fleet.web import coverage, hospital, plans, views
from fleet.web.incidents import incident_list_view, incident_view

urlpatterns = [
    path("workspace/hospital/requests/", hospital.hospital_requests, name="hospital-requests"),
    path(
        "workspace/hospital/requests/<int:pk>/cancel/",
        hospital.hospital_request_cancel,
        name="hospital-request-cancel",
    ),
    path(
        "workspace/hospital/notifications/read/",
        hospital.hospital_notifications_read,
        name="hospital-notifications-read",
    ),
    path("fleet/map/", views.fleet_map, name="fleet-map"),
    path("fleet/incidents/", incident_list_view, name="fleet-incidents"),
    path("fleet/incidents/<int:incident_id>/", incident_view, name="fleet-incident"),
    path("fleet/coverage/", coverage.coverage_page, name="fleet-coverage"),
    path(
        "fleet/regions/<str:region_code>/end-service/",
        coverage.region_exit_form,
        name="fleet-region-exit-form",
    ),
    path("fleet/units/<int:unit_id>/withdraw/", coverage.unit_withdraw_form, name="fleet-unit-withdraw-form"),
    path("fleet/units/<int:unit_id>/day/<str:day>/", views.unit_day_view, name="fleet-unit-day"),
    path("fleet/plans/", plans.plans_index, name="fleet-plans"),
    path("fleet/plans/<int:plan_id>/", plans.plan_detail, name="fleet-plan"),
    path("fleet/plans/<int:plan_id>/progress/", plans.plan_progress, name="fleet-plan-progress"),
    path("fleet/plans/<int:plan_id>/locks/", plans.plan_lock, name="fleet-plan-lock"),
    path("fleet/plans/<int:plan_id>/publish/", plans.plan_publish_view, name="fleet-plan-publish"),
    path("fleet/plans/<int:plan_id>/rerun/", plans.plan_rerun, name="fleet-plan-rerun"),
]
