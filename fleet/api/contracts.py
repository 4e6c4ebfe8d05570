"""Service contracts and full coverage API (docs/coverage-exit.md).

The operator's dispatchers and administrators list, create and change their contracts; hospital
users list their hospital's contracts read-only. ``coverage/contracts/`` is every active
contract against its interval (``/api/coverage/`` stays the overdue-only list).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.choices import OrganisationKind
from core.exceptions import AccessDenied
from core.models import Organisation
from fleet.api.requests import coverage_query
from fleet.models import ServiceContract
from fleet.selectors_coverage import (
    coverage_rows,
    service_contract_get_for_user,
    service_contract_list_for_user,
)
from fleet.selectors_requests import user_reads_hospital_requests, user_reads_operator_requests
from fleet.services.contracts import service_contract_create, service_contract_update

_REFUSED = {
    403: OpenApiResponse(description="Not allowed for your role"),
    404: OpenApiResponse(description="No such contract in your organisation"),
}


class ServiceContractSerializer(serializers.ModelSerializer):
    hospital_name = serializers.CharField(source="hospital.name", read_only=True)
    operator_name = serializers.CharField(source="operator.name", read_only=True)

    class Meta:
        model = ServiceContract
        fields = [
            "id",
            "operator",
            "operator_name",
            "hospital",
            "hospital_name",
            "modality",
            "interval_days",
            "active",
            "starts_on",
            "created_at",
        ]
        read_only_fields = fields


class ContractCreateSerializer(serializers.Serializer):
    # Shape only; the service is the one authority on valid values.
    hospital = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.HOSPITAL)
    )
    operator = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.OPERATOR),
        required=False,
        help_text="Defaults to the caller's operator.",
    )
    modality = serializers.CharField(max_length=8)
    interval_days = serializers.IntegerField()
    starts_on = serializers.DateField(required=False, help_text="Default: today")
    active = serializers.BooleanField(required=False, default=True)


class ContractUpdateSerializer(serializers.Serializer):
    interval_days = serializers.IntegerField(required=False)
    active = serializers.BooleanField(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send interval_days and/or active")
        return attrs


class CoverageRowSerializer(serializers.Serializer):
    contract_id = serializers.IntegerField()
    hospital_id = serializers.IntegerField()
    hospital_name = serializers.CharField()
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    region_code = serializers.CharField()
    modality = serializers.CharField()
    interval_days = serializers.IntegerField()
    last_visit = serializers.DateField(allow_null=True)
    next_visit = serializers.DateField(allow_null=True)
    due_on = serializers.DateField()
    days_overdue = serializers.IntegerField(help_text="0: due today; negative: days left")
    state = serializers.ChoiceField(choices=["ok", "due_soon", "overdue"])
    will_be_late = serializers.BooleanField()


def _check_reader(user) -> None:
    if not (user_reads_hospital_requests(user) or user_reads_operator_requests(user)):
        raise AccessDenied("Only hospital users, dispatchers and administrators see service contracts")


class ServiceContractListCreateApi(APIView):
    """The contracts the caller may see; dispatch creates one."""

    @extend_schema(responses={200: ServiceContractSerializer(many=True), 403: _REFUSED[403]})
    def get(self, request):
        _check_reader(request.user)
        rows = service_contract_list_for_user(request.user)[:1000]
        return Response(ServiceContractSerializer(rows, many=True).data)

    @extend_schema(
        request=ContractCreateSerializer,
        responses={
            201: ServiceContractSerializer,
            400: OpenApiResponse(description="Invalid; errors name the field"),
            403: _REFUSED[403],
            409: OpenApiResponse(description="The hospital already has a contract for this modality"),
        },
    )
    def post(self, request):
        data = ContractCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        operator = values.pop("operator", None) or request.user.organisation
        if operator is None:
            raise AccessDenied("Your account belongs to no operator")
        values.setdefault("starts_on", timezone.localdate())
        contract = service_contract_create(actor=request.user, operator=operator, **values)
        return Response(ServiceContractSerializer(contract).data, status=status.HTTP_201_CREATED)


class ServiceContractDetailApi(APIView):
    """One contract; dispatch changes its interval or (de)activates it."""

    @extend_schema(responses={200: ServiceContractSerializer, **_REFUSED})
    def get(self, request, pk: int):
        return Response(ServiceContractSerializer(service_contract_get_for_user(request.user, pk)).data)

    @extend_schema(
        request=ContractUpdateSerializer,
        responses={200: ServiceContractSerializer, 400: OpenApiResponse(description="Invalid"), **_REFUSED},
    )
    def patch(self, request, pk: int):
        data = ContractUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        contract = service_contract_get_for_user(request.user, pk)
        updated = service_contract_update(actor=request.user, contract=contract, **data.validated_data)
        return Response(
            ServiceContractSerializer(service_contract_get_for_user(request.user, updated.pk)).data
        )


class CoverageContractsApi(APIView):
    """Every active contract against its interval, most overdue first (dispatch)."""

    @extend_schema(
        parameters=[OpenApiParameter("on", str, description="day to evaluate, YYYY-MM-DD (default today)")],
        responses={200: CoverageRowSerializer(many=True), 403: _REFUSED[403]},
    )
    def get(self, request):
        on, operator_id = coverage_query(request)
        return Response(CoverageRowSerializer(coverage_rows(on=on, operator_id=operator_id), many=True).data)
