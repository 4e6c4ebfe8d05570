from __future__ import annotations

import math

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox.auth import TokenAuthentication
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.throttles import AuthRateThrottle
from core.exceptions import InvalidInput
from core.health import health_report, health_status, stalled_studies
from core.http import client_ip
from core.selectors_auth import login_lockout_seconds_left
from core.services.api_tokens import api_token_issue, api_token_revoke, api_tokens_revoke_all
from core.services.auth_audit import auth_login_failed_record, auth_login_refused_record


class HealthApi(APIView):
    """Liveness of every dependency; 503 when any is down (for load balancers and monitors)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "Health",
            {
                **{
                    name: serializers.CharField()
                    for name in ("database", "orthanc", "channel_layer", "broker")
                },
                "stalled_studies": serializers.IntegerField(allow_null=True),
            },
        )
    )
    def get(self, request):
        report = health_report()
        stalled = stalled_studies()
        healthy = health_status(report, stalled)
        return Response(
            {**report, "stalled_studies": stalled},
            status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
        )


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


class TokenCredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)


class AuditedObtainAuthToken(APIView):
    """``POST /api/auth/token/`` (username, password) → a new API token and its expiry; audited.

    Throttled per client address (AUTH_THROTTLE_RATE); a username locked out at this address
    (AUTH_LOCKOUT_FAILURES wrong passwords) gets 429 with Retry-After, even with the right password.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthRateThrottle]

    @extend_schema(
        request=TokenCredentialsSerializer,
        responses={
            200: inline_serializer(
                "ApiToken", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
            ),
            400: OpenApiResponse(description="Wrong username or password"),
            429: OpenApiResponse(description="Locked out, or too many requests; Retry-After says when"),
        },
        auth=[],
    )
    def post(self, request):
        serializer = TokenCredentialsSerializer(data=request.data)
        username = str(request.data.get("username", "")) if hasattr(request.data, "get") else ""
        if not serializer.is_valid():
            auth_login_failed_record(username=username, request=request, channel="api")
            serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            if auth_login_refused_record(username=username, request=request, channel="api"):
                wait = login_lockout_seconds_left(username=username, ip_address=client_ip(request))
                return Response(
                    {
                        "detail": "Too many failed sign-ins for this account from your address; "
                        f"try again in {math.ceil(wait / 60)} minutes.",
                        "code": "locked_out",
                    },
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                    headers={"Retry-After": str(wait)},
                )
            raise InvalidInput("Unable to log in with provided credentials.", code="invalid_credentials")
        key, expiry = api_token_issue(user=user, request=request)
        # As django.contrib.auth.login() does for the web: last_login, and axes clears the failures.
        user_logged_in.send(sender=user.__class__, request=request, user=user)
        return Response({"token": key, "expiry": expiry})


class ApiLogout(APIView):
    """``POST /api/auth/logout/``: the token this request carries stops working; 204."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        api_token_revoke(token=request.auth, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiLogoutAll(APIView):
    """``POST /api/auth/logoutall/``: every API token of the caller stops working; 204.

    Also from a signed-in browser session (with its CSRF token), to end tokens issued elsewhere.
    """

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        api_tokens_revoke_all(user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
