"""Critical results and notifications API: list, acknowledge; the caller's own notifications."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import StandardPagination
from core.choices import Role
from core.exceptions import AccessDenied
from core.services import audit_record
from telerad.choices import CriticalStatus
from telerad.models import CriticalResult, Notification
from telerad.selectors import critical_result_get_for_user, notification_list_for_user
from telerad.services.critical import (
    critical_result_acknowledge,
    critical_results_for_user,
)
from telerad.services.notifications import notification_get_own, notification_mark_read


class CriticalResultSerializer(serializers.ModelSerializer):
    hospital_name = serializers.CharField(source="hospital.name", read_only=True)
    accession_number = serializers.CharField(source="study.accession_number", read_only=True)
    flagged_by = serializers.CharField(source="flagged_by.username", read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", read_only=True, default=None)

    class Meta:
        model = CriticalResult
        fields = [
            "id",
            "status",
            "summary",
            "study",
            "report",
            "accession_number",
            "hospital",
            "hospital_name",
            "flagged_by",
            "flagged_at",
            "escalation_level",
            "next_escalation_at",
            "acknowledged_by",
            "acknowledged_at",
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "message", "critical_result", "created_at", "read_at"]
        read_only_fields = fields


class CriticalListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CriticalStatus.choices, required=False)


class CriticalResultListApi(APIView):
    """Critical results: a hospital user's hospital's, or all of them for QC officers."""

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=CriticalStatus.values),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="at most 200"),
        ],
        responses=CriticalResultSerializer(many=True),
    )
    def get(self, request):
        query = CriticalListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        results = critical_results_for_user(request.user)
        if query.validated_data.get("status"):
            results = results.filter(status=query.validated_data["status"])
        paginator = StandardPagination()
        page = paginator.paginate_queryset(results.order_by("-flagged_at", "-id"), request, view=self) or []
        if page:
            audit_record(
                actor=request.user,
                action="critical_result.list",
                object_type=CriticalResult._meta.label_lower,
                patient_data=True,
                details={"critical_results": [r.pk for r in page], "studies": [r.study_id for r in page]},
                request=request,
            )
        return paginator.get_paginated_response(CriticalResultSerializer(page, many=True).data)


class CriticalResultAcknowledgeApi(APIView):
    """Acknowledge a critical result (hospital users of its hospital); idempotent."""

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "CriticalAcknowledgement",
            {
                "detail": serializers.CharField(),
                "already_acknowledged": serializers.BooleanField(),
                "critical_result": CriticalResultSerializer(),
            },
        ),
    )
    def post(self, request, pk: int):
        user = request.user
        if not user.has_role(Role.HOSPITAL_USER):
            raise AccessDenied(
                "Only a hospital user of the patient's hospital acknowledges a critical result"
            )
        # Other hospitals' ids are "not found"; the service re-checks role and hospital.
        result = critical_result_get_for_user(user, pk)
        ack = critical_result_acknowledge(actor=user, result=result, request=request)
        return Response(
            {
                "detail": ack.message,
                "already_acknowledged": not ack.acknowledged_now,
                "critical_result": CriticalResultSerializer(ack.result).data,
            }
        )


class NotificationListApi(APIView):
    """The caller's own notifications, newest first."""

    @extend_schema(
        parameters=[
            OpenApiParameter("unread", bool, description="only those not yet read"),
            OpenApiParameter("page", int),
        ],
        responses=NotificationSerializer(many=True),
    )
    def get(self, request):
        unread = request.query_params.get("unread") in ("1", "true", "yes")
        notifications = notification_list_for_user(request.user, unread=unread)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(notifications, request, view=self)
        return paginator.get_paginated_response(NotificationSerializer(page or [], many=True).data)


class NotificationReadApi(APIView):
    """Mark one of the caller's notifications read (others' ids: 404)."""

    @extend_schema(request=None, responses=NotificationSerializer)
    def post(self, request, pk: int):
        notification = notification_get_own(user=request.user, pk=pk)
        notification = notification_mark_read(actor=request.user, notification=notification)
        return Response(NotificationSerializer(notification).data)
