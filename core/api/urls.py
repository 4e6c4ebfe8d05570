from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from core.api.views import HealthApi, MeApi

urlpatterns = [
    path("health/", HealthApi.as_view(), name="api-health"),
    path("me/", MeApi.as_view(), name="api-me"),
    path("auth/token/", obtain_auth_token, name="api-token"),
]
