"""De-identified exports: ask for one (queued for a worker) and follow it. QC officers and admins.

The copy itself is made by ``dicom.services.deid.study_deidentify`` in a Celery task, never in
the request: it holds Orthanc for as long as the study takes to rewrite. What is shown of an
export names no patient: no patient fields, no original UIDs (``instance_uids`` maps the
original SOP Instance UIDs, so only its count is exposed).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import StandardPagination
from core.exceptions import InvalidInput
from core.on_commit import on_commit
from core.services import audit_record
from dicom.models import DeidExport
from dicom.orthanc_client import ORTHANC_ID_RE
from dicom.selectors_deid import deid_export_get_for_user, deid_export_list_for_user, study_for_export
from dicom.services.deid import ALLOWED_ROLES, PROJECT_RE
from dicom.tasks import deidentify_study_task

PROJECT_MESSAGE = "project must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


class IsDeidStaff(BasePermission):
    message = "De-identified exports are for QC officers and administrators."

    def has_permission(self, request, view) -> bool:
        return bool(request.user.is_authenticated and request.user.has_role(*ALLOWED_ROLES))


# --- serializers ------------------------------------------------------------------------------------


class DeidExportSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)

    class Meta:
        model = DeidExport
        # Not instance_uids: its keys are the original SOP Instance UIDs.
        fields = [
            "id",
            "study",
            "project",
            "status",
            "series_count",
            "instance_count",
            "deid_study_instance_uid",
            "deid_orthanc_id",
            "error",
            "requested_by",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class DeidRequestSerializer(serializers.Serializer):
    # The service checks this too, but in the worker: checked here the client gets its 400 now.
    project = serializers.RegexField(
        PROJECT_RE,
        max_length=64,
        help_text="Teaching file or research protocol; pseudonyms are per project.",
        error_messages={"invalid": PROJECT_MESSAGE},
    )


class DeidListQuerySerializer(serializers.Serializer):
    study = serializers.IntegerField(min_value=1, required=False)
    project = serializers.CharField(max_length=64, required=False)


# --- views ------------------------------------------------------------------------------------------


class StudyDeidExportRequestApi(APIView):
    """Ask for the de-identified copy of a study for a project; a worker makes it."""

    permission_classes = [IsDeidStaff]

    @extend_schema(
        request=DeidRequestSerializer,
        responses={
            202: inline_serializer(
                "DeidExportAccepted",
                {
                    "study": serializers.IntegerField(),
                    "project": serializers.CharField(),
                    "status_url": serializers.CharField(),
                },
            ),
            400: OpenApiResponse(description="Invalid project, or the study is not in Orthanc"),
            403: OpenApiResponse(description="Not a QC officer or administrator"),
            404: OpenApiResponse(description="No such study (or not one the caller may see)"),
        },
    )
    def post(self, request, study_id: int):
        body = DeidRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = body.validated_data["project"]
        study = study_for_export(request.user, study_id)
        if not ORTHANC_ID_RE.match(study.orthanc_id or ""):
            raise InvalidInput("The study has no valid Orthanc id")
        pk, user_id = study.pk, request.user.pk
        audit_record(
            actor=request.user,
            action="deid_export.request",
            obj=study,
            patient_data=True,
            patient_id=study.patient_id,
            details={"project": project},
            request=request,
        )
        on_commit(lambda: deidentify_study_task.delay(pk, project, user_id))
        status_url = reverse("dicom-deid-exports") + "?" + urlencode({"study": pk, "project": project})
        return Response(
            {"study": pk, "project": project, "status_url": status_url}, status=status.HTTP_202_ACCEPTED
        )


class DeidExportListApi(APIView):
    """The exports of the studies the caller may see, newest first."""

    permission_classes = [IsDeidStaff]

    @extend_schema(
        parameters=[
            OpenApiParameter("study", int, description="study id"),
            OpenApiParameter("project", str),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="at most 200"),
        ],
        responses={
            200: DeidExportSerializer(many=True),
            403: OpenApiResponse(description="Not a QC officer or administrator"),
        },
    )
    def get(self, request):
        query = DeidListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        exports = deid_export_list_for_user(request.user, **query.validated_data)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(exports, request, view=self) or []
        return paginator.get_paginated_response(DeidExportSerializer(page, many=True).data)


class DeidExportDetailApi(APIView):
    """One export: its status (running, done, failed), counts, error and the copy's identifiers."""

    permission_classes = [IsDeidStaff]

    @extend_schema(
        responses={
            200: DeidExportSerializer,
            403: OpenApiResponse(description="Not a QC officer or administrator"),
            404: OpenApiResponse(description="No such export"),
        }
    )
    def get(self, request, pk: int):
        return Response(DeidExportSerializer(deid_export_get_for_user(request.user, pk)).data)
