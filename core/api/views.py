from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.health import health_report


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
