from django.urls import include, path

urlpatterns = [
    path("", include("telerad.web.reading_urls")),
    path("", include("telerad.web.reports_urls")),
    path("", include("telerad.web.portal_urls")),
    path("", include("telerad.web.peer_urls")),
]
