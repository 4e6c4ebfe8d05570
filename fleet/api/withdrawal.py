"""Unit withdrawal and region exit API: refused with 409 (uncovered hospitals) until they are covered."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import AccessDenied
from fleet.models import RegionExit, UnitWithdrawal, WithdrawalOutcome
from fleet.selectors import unit_get_for_user
from fleet.selectors_coverage import unit_withdrawals
from fleet.services.region_exit import region_exit_refusal, region_service_end
from fleet.services.withdrawal import REASON_MAX, unit_withdraw, withdrawal_refusal

_REFUSED = {
    403: OpenApiResponse(
        description="Not the operator's dispatcher/administrator, or an override by a non-administrator"
    ),
    404: OpenApiResponse(description="No such unit in your operator"),
}


class WithdrawSerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        max_length=REASON_MAX,
        required=False,
        allow_blank=True,
        default="",
        help_text="Administrators only: withdraw although hospitals would miss their interval",
    )


class UnitWithdrawalSerializer(serializers.ModelSerializer):
    unit_name = serializers.CharField(source="unit.name", read_only=True)
    actor = serializers.CharField(source="actor.username", read_only=True)

    class Meta:
        model = UnitWithdrawal
        fields = [
            "id",
            "unit",
            "unit_name",
            "actor",
            "created_at",
            "outcome",
            "uncovered",
            "whatif_plan",
            "reason",
        ]
        read_only_fields = fields


class UnitWithdrawApi(APIView):
    """Take the unit out of the fleet for good (refused while hospitals would miss their interval)."""

    @extend_schema(
        request=WithdrawSerializer,
        responses={
            200: UnitWithdrawalSerializer,
            409: OpenApiResponse(
                description="Refused: `uncovered` hospitals, `whatif_plan` id and `withdrawal` id; "
                "or the unit is on the road / already withdrawn"
            ),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = WithdrawSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unit = unit_get_for_user(request.user, pk)
        withdrawal = unit_withdraw(
            actor=request.user, unit=unit, override_reason=data.validated_data["override_reason"]
        )
        if withdrawal.outcome == WithdrawalOutcome.REFUSED:
            raise withdrawal_refusal(withdrawal)
        return Response(UnitWithdrawalSerializer(withdrawal).data)


class UnitWithdrawalListApi(APIView):
    """The unit's withdrawal attempts, newest first."""

    @extend_schema(responses={200: UnitWithdrawalSerializer(many=True), **_REFUSED})
    def get(self, request, pk: int):
        unit = unit_get_for_user(request.user, pk)
        rows = unit_withdrawals(unit)
        return Response(UnitWithdrawalSerializer(rows, many=True).data)


class RegionExitSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True)

    class Meta:
        model = RegionExit
        fields = [
            "id",
            "region_code",
            "actor",
            "created_at",
            "outcome",
            "uncovered",
            "contracts_ended",
            "reason",
        ]
        read_only_fields = fields


class RegionExitApi(APIView):
    """End your operator's service in a region (refused while no other operator takes its hospitals)."""

    @extend_schema(
        request=WithdrawSerializer,
        responses={
            200: RegionExitSerializer,
            400: OpenApiResponse(description="No active contract of your operator in that region"),
            403: _REFUSED[403],
            409: OpenApiResponse(
                description="Refused: `uncovered` contracts nobody takes over, `region_exit` id"
            ),
        },
    )
    def post(self, request, region_code: str):
        data = WithdrawSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operator = request.user.organisation
        if operator is None:
            raise AccessDenied("Your account belongs to no operator")
        record = region_service_end(
            actor=request.user,
            operator=operator,
            region_code=region_code,
            override_reason=data.validated_data["override_reason"],
        )
        if record.outcome == WithdrawalOutcome.REFUSED:
            raise region_exit_refusal(record)
        return Response(RegionExitSerializer(record).data)
