"""Endpoints Orthanc's plugin calls back into. Not for users: a shared secret, no session."""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.on_commit import on_commit
from dicom.orthanc_client import ORTHANC_ID_RE
from dicom.tasks import ingest_study_task

logger = logging.getLogger(__name__)

PLUGIN_SECRET_HEADER = "X-Caravan-Plugin-Secret"


class HasPluginSecret(BasePermission):
    """The request carries ORTHANC_PLUGIN_SECRET in the plugin's header."""

    message = f"A valid {PLUGIN_SECRET_HEADER} header is required."

    def has_permission(self, request, view) -> bool:
        supplied = request.headers.get(PLUGIN_SECRET_HEADER, "")
        expected = settings.ORTHANC_PLUGIN_SECRET
        if not supplied or not expected:
            return False
        # Bytes, because compare_digest refuses non-ASCII str and a header may hold anything.
        return hmac.compare_digest(supplied.encode("utf-8", "replace"), expected.encode("utf-8"))


class NudgeSerializer(serializers.Serializer):
    change = serializers.ChoiceField(choices=["StableStudy"])
    orthanc_id = serializers.RegexField(ORTHANC_ID_RE, max_length=44)
    # The /changes sequence number of the StableStudy change; null when the plugin could not
    # find it (the reconciler does not depend on it).
    seq = serializers.IntegerField(min_value=0, allow_null=True, required=False, default=None)
    # Unix time at which Orthanc declared the study stable (same host clock as the platform).
    stable_at = serializers.FloatField(min_value=0, allow_null=True, required=False, default=None)


class OrthancNudgeApi(APIView):
    """Orthanc reports a stable study: schedule its ingest (after commit)."""

    authentication_classes: list = []
    permission_classes = [HasPluginSecret]
    parser_classes = [JSONParser]

    @extend_schema(
        request=NudgeSerializer,
        responses={
            202: inline_serializer(
                "OrthancNudgeAccepted",
                {"status": serializers.CharField(), "orthanc_id": serializers.CharField()},
            ),
            400: OpenApiResponse(description="Malformed body"),
            403: OpenApiResponse(description="Missing or wrong plugin secret"),
        },
    )
    def post(self, request):
        serializer = NudgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        nudge = serializer.validated_data
        # The task does the work (and the audit of what it ingests); the nudge only schedules it.
        # Lost here or later, the reconciler over /changes still finds the study.
        orthanc_id, seq, stable_at = nudge["orthanc_id"], nudge["seq"], nudge["stable_at"]
        on_commit(lambda: ingest_study_task.delay(orthanc_id, seq, stable_at))
        logger.info("Orthanc nudge %s %s seq %s", nudge["change"], orthanc_id, seq)
        return Response(
            {"status": "accepted", "orthanc_id": nudge["orthanc_id"]}, status=status.HTTP_202_ACCEPTED
        )
