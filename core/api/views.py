from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.health import health_report
from core.services.auth_audit import auth_login_failed_record, auth_login_record


class HealthApi(APIView):
    """Liveness of every dependency; 503 when any is down (for load balancers and monitors)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {name: serializers.CharField() for name in ("database", "orthanc", "channel_layer", "broker")},
        )
    )
    def get(self, request):
        report = health_report()
        healthy = all(value == "ok" for value in report.values())
        return Response(report, status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)


class MeApi(APIView):
    """The calling user: organisation and roles."""

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "username": serializers.CharField(),
                "organisation": serializers.CharField(allow_null=True),
                "organisation_kind": serializers.CharField(allow_null=True),
                "roles": serializers.ListField(child=serializers.CharField()),
            },
        )
    )
    def get(self, request):
        user = request.user
        org = user.organisation
        return Response(
            {
                "username": user.username,
                "organisation": org.name if org else None,
                "organisation_kind": org.kind if org else None,
                "roles": sorted(user.roles),
            }
        )


class AuditedObtainAuthToken(ObtainAuthToken):
    """``POST /api/auth/token/`` (username, password) → the user's API token; audited both ways."""

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            auth_login_failed_record(
                username=str(request.data.get("username", "")), request=request, channel="api"
            )
            serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        auth_login_record(user=user, request=request, channel="api")
        return Response({"token": token.key})
