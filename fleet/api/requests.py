"""Service requests API: hospitals file and follow requests; dispatch declines and schedules.

Hospital users see and file only their hospital's requests; the operator's dispatchers and
administrators see the requests addressed to it. Anyone else is refused; ids out of scope are 404.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.choices import OrganisationKind
from core.exceptions import AccessDenied, NotFound
from core.models import Organisation
from fleet.models import ServiceRequest, ServiceRequestStatus
from fleet.selectors import visit_get_for_user
from fleet.selectors_requests import (
    hospitals_overdue,
    service_request_get_for_user,
    service_request_list_for_user,
    service_request_view_for_user,
    user_reads_hospital_requests,
    user_reads_operator_requests,
)
from fleet.services.request_schedule import service_request_schedule
from fleet.services.requests import (
    service_request_cancel,
    service_request_create,
    service_request_decline,
    service_request_transition,
)

_REFUSED = {
    403: OpenApiResponse(description="Not allowed for your role"),
    404: OpenApiResponse(description="No such request in your organisation"),
}
_FIELDS = [
    "id",
    "hospital",
    "hospital_name",
    "operator",
    "operator_name",
    "modality",
    "patients",
    "earliest_date",
    "latest_date",
    "priority",
    "notes",
    "status",
    "decline_reason",
    "visit",
    "visit_date",
    "exam_count",
    "created_by",
    "created_at",
    "status_changed_at",
]


class ServiceRequestSerializer(serializers.ModelSerializer):
    """A request without its exam list (patient data is shown only on the audited detail)."""

    hospital_name = serializers.CharField(source="hospital.name", read_only=True)
    operator_name = serializers.CharField(source="operator.name", read_only=True)
    visit_date = serializers.DateField(source="visit.date", read_only=True, default=None)
    exam_count = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = ServiceRequest
        fields = _FIELDS
        read_only_fields = fields

    def get_exam_count(self, obj: ServiceRequest) -> int:
        return len(obj.exams)


class ServiceRequestDetailSerializer(ServiceRequestSerializer):
    class Meta:
        model = ServiceRequest
        fields = [*_FIELDS, "exams"]
        read_only_fields = fields


class ExamSerializer(serializers.Serializer):
    # Shape only; the service is the one authority on valid values.
    procedure = serializers.CharField()
    body_part = serializers.CharField()
    patient_id = serializers.CharField()
    patient_name = serializers.CharField()
    sex = serializers.CharField()
    birth_date = serializers.CharField()


class ServiceRequestCreateSerializer(serializers.Serializer):
    hospital = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.HOSPITAL),
        required=False,
        help_text="Defaults to the caller's hospital; hospital users file only for their own.",
    )
    operator = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.OPERATOR),
        required=False,
        help_text="Needed only when several operators hold a contract for the modality.",
    )
    modality = serializers.CharField(max_length=8)
    patients = serializers.IntegerField()
    earliest_date = serializers.DateField()
    latest_date = serializers.DateField()
    priority = serializers.CharField(max_length=16, default="routine")
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    exams = serializers.ListField(child=serializers.DictField(), required=False, default=list)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class OptionalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")


class ScheduleSerializer(serializers.Serializer):
    visit = serializers.IntegerField()


class TransitionSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=16)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CoverageQuerySerializer(serializers.Serializer):
    on = serializers.DateField(required=False)


def coverage_query(request) -> tuple[dt.date, int | None]:
    """The day (``?on=``, default today) and operator scope of a coverage read; dispatch only."""
    user = request.user
    if not user_reads_operator_requests(user):
        raise AccessDenied("Only dispatchers and administrators see coverage")
    query = CoverageQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    on = query.validated_data.get("on") or timezone.localdate()
    return on, None if user.is_superuser else user.organisation_id


def _check_reader(user) -> None:
    if not (user_reads_hospital_requests(user) or user_reads_operator_requests(user)):
        raise AccessDenied("Only hospital users, dispatchers and administrators see service requests")


class ServiceRequestListCreateApi(APIView):
    """The requests the caller may see; a hospital user files one."""

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=ServiceRequestStatus.values)],
        responses={200: ServiceRequestSerializer(many=True), 403: _REFUSED[403]},
    )
    def get(self, request):
        _check_reader(request.user)
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in ServiceRequestStatus.values:
            raise serializers.ValidationError(
                {"status": [f"valid: {', '.join(ServiceRequestStatus.values)}"]}
            )
        rows = service_request_list_for_user(request.user, status=wanted)[:500]
        return Response(ServiceRequestSerializer(rows, many=True).data)

    @extend_schema(
        request=ServiceRequestCreateSerializer,
        responses={
            201: ServiceRequestDetailSerializer,
            400: OpenApiResponse(description="Invalid request; errors name the field"),
            403: _REFUSED[403],
        },
    )
    def post(self, request):
        serializer = ServiceRequestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        hospital = data.pop("hospital", None) or request.user.organisation
        if hospital is None:
            raise AccessDenied("Your account belongs to no hospital; only hospital users file requests")
        created = service_request_create(actor=request.user, hospital=hospital, request=request, **data)
        return Response(ServiceRequestDetailSerializer(created).data, status=status.HTTP_201_CREATED)


class ServiceRequestDetailApi(APIView):
    """One request with its exam list (audited: patient data)."""

    @extend_schema(responses={200: ServiceRequestDetailSerializer, **_REFUSED})
    def get(self, request, pk: int):
        found = service_request_view_for_user(request.user, pk, request=request)
        return Response(ServiceRequestDetailSerializer(found).data)


class ServiceRequestDeclineApi(APIView):
    """Dispatch declines the request, with a reason."""

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: ServiceRequestDetailSerializer,
            409: OpenApiResponse(description="Already over"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found = service_request_get_for_user(request.user, pk)
        done = service_request_decline(
            service_request=found, actor=request.user, reason=data.validated_data["reason"], request=request
        )
        return Response(ServiceRequestDetailSerializer(done).data)


class ServiceRequestCancelApi(APIView):
    """The hospital withdraws its request while it is submitted or planned."""

    @extend_schema(
        request=OptionalReasonSerializer,
        responses={
            200: ServiceRequestDetailSerializer,
            409: OpenApiResponse(description="Too late"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = OptionalReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found = service_request_get_for_user(request.user, pk)
        done = service_request_cancel(
            service_request=found, actor=request.user, reason=data.validated_data["reason"], request=request
        )
        return Response(ServiceRequestDetailSerializer(done).data)


class ServiceRequestTransitionApi(APIView):
    """Dispatch moves the request: planned, back to submitted, fulfilled, declined (with reason)."""

    @extend_schema(
        request=TransitionSerializer,
        responses={
            200: ServiceRequestDetailSerializer,
            409: OpenApiResponse(description="Illegal"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = TransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found = service_request_get_for_user(request.user, pk)
        done = service_request_transition(
            service_request=found,
            to_status=data.validated_data["to"],
            actor=request.user,
            reason=data.validated_data["reason"],
            request=request,
        )
        return Response(ServiceRequestDetailSerializer(done).data)


class ServiceRequestScheduleApi(APIView):
    """Dispatch fixes the request on a visit; its exam list is booked as orders."""

    @extend_schema(
        request=ScheduleSerializer,
        responses={
            200: ServiceRequestDetailSerializer,
            400: OpenApiResponse(description="The visit does not fit the request"),
            409: OpenApiResponse(description="Not schedulable now, or an exam could not be booked"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = ScheduleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found = service_request_get_for_user(request.user, pk)
        try:
            visit = visit_get_for_user(request.user, data.validated_data["visit"])
        except NotFound:
            raise serializers.ValidationError({"visit": ["No visit of your operator with this id"]}) from None
        done = service_request_schedule(
            service_request=found, visit=visit, actor=request.user, request=request
        )
        return Response(ServiceRequestDetailSerializer(done).data)


class OverdueHospitalSerializer(serializers.Serializer):
    contract_id = serializers.IntegerField()
    hospital_id = serializers.IntegerField()
    hospital_name = serializers.CharField()
    modality = serializers.CharField()
    interval_days = serializers.IntegerField()
    last_visit = serializers.DateField(allow_null=True)
    next_visit = serializers.DateField(allow_null=True)
    due_on = serializers.DateField()
    days_overdue = serializers.IntegerField()


class CoverageApi(APIView):
    """Hospitals whose contracted service interval has lapsed, most overdue first (dispatch)."""

    @extend_schema(
        parameters=[OpenApiParameter("on", str, description="day to evaluate, YYYY-MM-DD (default today)")],
        responses={200: OverdueHospitalSerializer(many=True), 403: _REFUSED[403]},
    )
    def get(self, request):
        on, operator_id = coverage_query(request)
        rows = hospitals_overdue(on=on, operator_id=operator_id)
        return Response(OverdueHospitalSerializer(rows, many=True).data)
