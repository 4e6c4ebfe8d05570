"""The reconciliation queue: studies that matched no order, resolved by a QC officer."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import NotFound
from dicom.models import Study
from dicom.selectors import order_get_for_write, reconciliation_list_audit, reconciliation_queue
from dicom.services.reconcile import study_link_order


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
        ]


class LinkOrderSerializer(serializers.Serializer):
    order = serializers.IntegerField(min_value=1)


class ReconciliationQueueApi(APIView):
    """Unmatched studies and Study-UID conflicts (``ingest_status`` says which), oldest first."""

    permission_classes = [IsQCStaff]

    @extend_schema(responses=QueuedStudySerializer(many=True))
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(reconciliation_queue(request.user), request, view=self)
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
