from django.urls import path

from telerad.api.critical import (
    CriticalResultAcknowledgeApi,
    CriticalResultListApi,
    NotificationListApi,
    NotificationReadApi,
)

urlpatterns = [
    path("critical-results/", CriticalResultListApi.as_view(), name="api-critical-results"),
    path(
        "critical-results/<int:pk>/acknowledge/",
        CriticalResultAcknowledgeApi.as_view(),
        name="api-critical-result-acknowledge",
    ),
    path("notifications/", NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/<int:pk>/read/", NotificationReadApi.as_view(), name="api-notification-read"),
]
