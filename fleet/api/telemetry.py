"""Telemetry from the vans' GPS devices: ``POST /api/units/<id>/telemetry/``.

Not for users: the device authenticates with its own token (``Authorization: Device <key>``).
Contract and rules: docs/telemetry.md.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.throttles import SettingRateThrottle
from fleet.live import fleet_map_publish
from fleet.models import DeviceToken
from fleet.selectors_telemetry import device_token_for_key
from fleet.services.telemetry import telemetry_ingest
from fleet.services.telemetry_config import telemetry_setting

SCHEME = "Device"


class DeviceTokenAuthentication(BaseAuthentication):
    """``Authorization: Device <key>``: the request is the device of the token's unit."""

    def authenticate(self, request):
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != SCHEME:
            return None  # -> 401 "credentials were not provided"
        token = device_token_for_key(key.strip())
        if token is None:
            raise AuthenticationFailed("Invalid or revoked device token.", code="not_authenticated")
        return AnonymousUser(), token

    def authenticate_header(self, request) -> str:
        return SCHEME


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """The device scheme in the OpenAPI schema (registered by subclassing)."""

    target_class = DeviceTokenAuthentication
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Device <key>"}


class IsDevice(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, DeviceToken)


class TelemetryRateThrottle(SettingRateThrottle):
    """Batches per device token (TELEMETRY_THROTTLE_RATE): one runaway device cannot starve the rest."""

    scope = "telemetry"
    rate_setting = "TELEMETRY_THROTTLE_RATE"

    def get_ident(self, request) -> str:
        if isinstance(request.auth, DeviceToken):
            return f"device-{request.auth.pk}"
        return super().get_ident(request)


class TelemetryBatchSerializer(serializers.Serializer):
    # Each fix is checked by the service, so one bad fix does not refuse the batch.
    fixes = serializers.ListField(child=serializers.JSONField(), allow_empty=False)

    def validate_fixes(self, value: list) -> list:
        limit = int(telemetry_setting("TELEMETRY_MAX_BATCH"))
        if len(value) > limit:
            raise serializers.ValidationError(
                f"A batch holds at most {limit} fixes; this one has {len(value)}.", code="batch_too_large"
            )
        return value


class TelemetryBatchApi(APIView):
    """Store a batch of the unit's GPS fixes; 200 with per-fix counts and errors."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [TelemetryRateThrottle]
    parser_classes = [JSONParser]

    @extend_schema(
        request=TelemetryBatchSerializer,
        responses={
            200: OpenApiResponse(
                description="Counts (accepted/duplicates/rejected/flagged) and per-fix errors"
            ),
            400: OpenApiResponse(description="Malformed body or batch too large; nothing stored"),
            401: OpenApiResponse(
                description="Missing, invalid or revoked token, or another unit's; nothing stored"
            ),
            429: OpenApiResponse(description="Too many batches from this device; Retry-After says when"),
        },
    )
    def post(self, request, unit_id: int):
        token: DeviceToken = request.auth
        if token.unit_id != unit_id:
            raise AuthenticationFailed("This device token belongs to another unit.", code="not_authenticated")
        serializer = TelemetryBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = telemetry_ingest(unit=token.unit, fixes=serializer.validated_data["fixes"])
        if result.moved_unit_ids:
            # One throttled live-map message per batch, after commit (fleet/live.py).
            fleet_map_publish(unit_ids=result.moved_unit_ids)
        return Response(result.as_dict(), status=status.HTTP_200_OK)

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # The shared handler gives DRF's 401s a detail only; our bodies always carry a code.
        if response is not None and response.status_code == 401 and isinstance(response.data, dict):
            response.data.setdefault("code", "not_authenticated")
        return response
