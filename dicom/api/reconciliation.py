"""The reconciliation queue: studies that cannot be routed until a QC officer acts (matched no
order, clash with another study's UID, or held by a failed QC verdict), and the two ways out:
link to an order, release a QC failure."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import NotFound
from dicom.choices import IngestStatus, QCOutcome
from dicom.models import Study
from dicom.selectors import (
    order_get_for_write,
    reconciliation_list_audit,
    reconciliation_queue,
    study_qc_hold_findings,
)
from dicom.services.qc import study_qc_release
from dicom.services.reconcile import study_link_order
from dicom.study_access import studies_visible_to


class IsQCStaff(BasePermission):
    message = "The reconciliation queue is for QC officers and admins."

    def has_permission(self, request, view) -> bool:
        return bool(request.user.is_authenticated and request.user.has_role("qc_officer", "admin"))


class QueuedStudySerializer(serializers.ModelSerializer):
    class Meta:
        model = Study
        fields = [
            "id",
            "orthanc_id",
            "study_instance_uid",
            "accession_number",
            "patient_id",
            "patient_name",
            "patient_birth_date",
            "study_date",
            "modalities",
            "body_part",
            "source_aet",
            "number_of_series",
            "number_of_instances",
            "ingested_at",
            "qc_outcome",
            "ingest_status",
            "uid_conflict_with",
            "match_method",
            "order",
            "source_accession_number",
            "held_because",
            "qc_findings",
        ]

    held_because = serializers.SerializerMethodField()
    qc_findings = serializers.SerializerMethodField()

    def get_held_because(self, study: Study) -> str:
        """``unmatched``, ``uid_conflict`` or ``qc_failed``: what must happen before it is read."""
        if study.ingest_status == IngestStatus.MATCHED:
            return "qc_failed" if study.qc_outcome == QCOutcome.FAIL and study.routable_at is None else ""
        return str(study.ingest_status)

    def get_qc_findings(self, study: Study) -> list[dict]:
        """For a QC-held study, the failing findings of its newest QC result (the reason)."""
        return study_qc_hold_findings(study) if self.get_held_because(study) == "qc_failed" else []


class StudyQCReleaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Study
        fields = [
            "id",
            "accession_number",
            "qc_outcome",
            "routable_at",
            "qc_released_at",
            "qc_released_by",
            "qc_release_reason",
        ]


class QCReleaseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class LinkOrderSerializer(serializers.Serializer):
    order = serializers.IntegerField(min_value=1)


class ReconciliationQueueApi(APIView):
    """Unmatched studies, Study-UID conflicts and QC-held studies (``held_because`` says which, with
    the failing QC findings), oldest first."""

    permission_classes = [IsQCStaff]

    @extend_schema(responses=QueuedStudySerializer(many=True))
    def get(self, request):
        paginator = PageNumberPagination()
        queue = reconciliation_queue(request.user).prefetch_related("qc_results")
        page = paginator.paginate_queryset(queue, request, view=self)
        reconciliation_list_audit(request.user, page or [], request=request)
        return paginator.get_paginated_response(QueuedStudySerializer(page, many=True).data)


class ReconciliationLinkApi(APIView):
    """Link an unmatched study to the order it fulfils (audited; QC then runs again)."""

    permission_classes = [IsQCStaff]

    @extend_schema(request=LinkOrderSerializer, responses=QueuedStudySerializer)
    def post(self, request, study_id: int):
        body = LinkOrderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        study = reconciliation_queue(request.user).filter(pk=study_id).first()
        if study is None:
            raise NotFound("No study with this id is waiting in the reconciliation queue")
        order = order_get_for_write(request.user, body.validated_data["order"])
        linked = study_link_order(actor=request.user, study=study, order=order, request=request)
        return Response(QueuedStudySerializer(linked).data)


class StudyQCReleaseApi(APIView):
    """Release a study held by a failed QC verdict: it becomes routable, the reason is recorded
    and audited. QC officers and admins of the operator whose van acquired it."""

    permission_classes = [IsQCStaff]

    @extend_schema(request=QCReleaseSerializer, responses=StudyQCReleaseSerializer)
    def post(self, request, study_id: int):
        body = QCReleaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        study = studies_visible_to(request.user).filter(pk=study_id).first()
        if study is None:
            raise NotFound("No study with this id")
        released = study_qc_release(
            actor=request.user, study=study, reason=body.validated_data["reason"], request=request
        )
        return Response(StudyQCReleaseSerializer(released).data)
