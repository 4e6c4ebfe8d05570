"""Orders API: book, list, read and cancel exams. Scoped to the caller's hospital."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.pagination import StandardPagination
from core.choices import OrganisationKind
from core.exceptions import AccessDenied, InvalidInput
from core.models import Organisation
from dicom.choices import OrderStatus, Priority
from dicom.models import Order
from dicom.selectors import order_get_for_user, order_get_for_write, order_list_audit, order_list_for_user
from dicom.services.order_booking import booking_visit_get
from dicom.services.orders import order_cancel, order_create, order_start
from fleet.models import Unit


class OrderSerializer(serializers.ModelSerializer):
    hospital_name = serializers.CharField(source="hospital.name", read_only=True)
    unit_name = serializers.CharField(source="unit.name", read_only=True)
    unit_ae_title = serializers.CharField(source="unit.ae_title", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "accession_number",
            "study_instance_uid",
            "status",
            "hospital",
            "hospital_name",
            "unit",
            "unit_name",
            "unit_ae_title",
            "visit",
            "scheduled_date",
            "requested_procedure",
            "modality",
            "body_part",
            "priority",
            "patient_id",
            "patient_name",
            "patient_sex",
            "patient_birth_date",
            "notes",
            "client_request_id",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class OrderCreateSerializer(serializers.Serializer):
    # Choice fields are plain text here: the service is the one authority on what is valid.
    hospital = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.HOSPITAL),
        required=False,
        help_text="Defaults to the caller's hospital; hospital users book only for their own.",
    )
    visit = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The visit to book on (one of your hospital's); unit and scheduled_date then "
        "default to its unit and day.",
    )
    unit = serializers.PrimaryKeyRelatedField(
        queryset=Unit.objects.all(),
        required=False,
        help_text="Without visit: the unit whose visit to your hospital on scheduled_date to book on.",
    )
    scheduled_date = serializers.DateField(required=False)
    requested_procedure = serializers.CharField(max_length=200, trim_whitespace=True)
    modality = serializers.CharField(max_length=16)
    body_part = serializers.CharField(max_length=32)
    priority = serializers.CharField(max_length=16, default=Priority.ROUTINE)
    patient_id = serializers.CharField(max_length=200)
    patient_name = serializers.CharField(max_length=400, help_text="DICOM PN: FAMILY^GIVEN")
    patient_sex = serializers.CharField(max_length=8)
    patient_birth_date = serializers.DateField()
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    client_request_id = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        help_text="Idempotency key: a retry with the same key returns the order already booked.",
    )


class OrderListQuerySerializer(serializers.Serializer):
    date = serializers.DateField(required=False)
    status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class OrderListCreateApi(APIView):
    """List the orders the caller may see; book an exam (hospital users)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("date", str, description="scheduled date, YYYY-MM-DD"),
            OpenApiParameter("status", str, enum=OrderStatus.values),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description="at most 200"),
        ],
        responses=OrderSerializer(many=True),
    )
    def get(self, request):
        query = OrderListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        orders = order_list_for_user(request.user, **query.validated_data)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(orders, request, view=self) or []
        order_list_audit(request.user, page, request=request)
        return paginator.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(
        request=OrderCreateSerializer,
        responses={
            201: OrderSerializer,
            400: OpenApiResponse(
                description="Invalid booking; `code` says why (no_contract, no_visit, visit_not_at_hospital, "
                "visit_other_unit, visit_other_date, visit_required, invalid_*)"
            ),
            403: OpenApiResponse(description="Not a hospital user of that hospital"),
            409: OpenApiResponse(
                description="The unit or visit cannot take it (visit_cancelled, visit_over, unit_withdrawn, "
                "unit_unlicensed, unit_qc_hold), or client_request_id reused for another booking"
            ),
        },
    )
    def post(self, request):
        serializer = OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        hospital = data.pop("hospital", None) or request.user.organisation
        if hospital is None:
            raise AccessDenied("Your account belongs to no hospital; only hospital users book exams")
        visit_id = data.pop("visit", None)
        if visit_id is not None:
            visit = booking_visit_get(actor=request.user, hospital=hospital, visit_id=visit_id)
            data.setdefault("unit", visit.unit)
            data.setdefault("scheduled_date", visit.date)
            data["visit"] = visit
        elif "unit" not in data or "scheduled_date" not in data:
            raise InvalidInput(
                "visit: give the visit to book on (or its unit and scheduled_date)",
                code="visit_required",
                extra={"field": "visit"},
            )
        order = order_create(actor=request.user, hospital=hospital, request=request, **data)
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    """One order (another hospital's id is 404)."""

    @extend_schema(responses={200: OrderSerializer, 404: OpenApiResponse(description="No such order")})
    def get(self, request, pk: int):
        order = order_get_for_user(request.user, pk, request=request)
        return Response(OrderSerializer(order).data)


class OrderCancelApi(APIView):
    """Cancel a scheduled order; it leaves the unit's worklist."""

    @extend_schema(
        request=CancelSerializer,
        responses={
            200: OrderSerializer,
            403: OpenApiResponse(description="Not allowed to cancel this order"),
            404: OpenApiResponse(description="No such order"),
            409: OpenApiResponse(description="The order is no longer scheduled"),
        },
    )
    def post(self, request, pk: int):
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = order_get_for_write(request.user, pk)
        order = order_cancel(
            actor=request.user, order=order, reason=serializer.validated_data["reason"], request=request
        )
        return Response(OrderSerializer(order).data)


class OrderStartApi(APIView):
    """The technologist starts the exam; refused while the unit is on QC hold."""

    @extend_schema(
        request=None,
        responses={
            200: OrderSerializer,
            403: OpenApiResponse(description="Not a technologist of the unit's operator"),
            404: OpenApiResponse(description="No such order"),
            409: OpenApiResponse(description="The unit is on QC hold, or the order is no longer scheduled"),
        },
    )
    def post(self, request, pk: int):
        order = order_get_for_write(request.user, pk)
        order = order_start(actor=request.user, order=order, request=request)
        return Response(OrderSerializer(order).data)
