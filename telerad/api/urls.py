from django.urls import include, path

urlpatterns = [
    path("", include("telerad.api.worklist_urls")),
    path("", include("telerad.api.reports_urls")),
    path("", include("telerad.api.critical_urls")),
    path("", include("telerad.api.peer_urls")),
]
