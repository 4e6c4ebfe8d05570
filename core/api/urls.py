from django.urls import path

from core.api.views import ApiLogout, ApiLogoutAll, AuditedObtainAuthToken, HealthApi, MeApi

urlpatterns = [
    path("health/", HealthApi.as_view(), name="api-health"),
    path("me/", MeApi.as_view(), name="api-me"),
    path("auth/token/", AuditedObtainAuthToken.as_view(), name="api-token"),
    path("auth/logout/", ApiLogout.as_view(), name="api-logout"),
    path("auth/logoutall/", ApiLogoutAll.as_view(), name="api-logout-all"),
]
