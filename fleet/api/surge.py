"""Incidents API (emergency surge, docs/surge.md): declare, list, detail, confirm, close.

Only the operator's dispatchers and administrators reach it (others: 403); incidents of another
operator are 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils.timezone import localtime
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.choices import OrganisationKind
from core.exceptions import AccessDenied, NotFound
from core.models import Organisation
from fleet.models import Incident, IncidentStatus
from fleet.selectors_map import map_operator_for_user
from fleet.selectors_surge import (
    incident_assignments,
    incident_get_for_operator,
    incident_list_for_operator,
    surge_ranking,
)
from fleet.services.surge import incident_close, incident_confirm, incident_declare

_REFUSED = {
    403: OpenApiResponse(description="Not a dispatcher or administrator of a fleet operator"),
    404: OpenApiResponse(description="No such incident of your operator"),
}
_FIELDS = [
    "id",
    "name",
    "latitude",
    "longitude",
    "hospital",
    "hospital_name",
    "needs",
    "starts_at",
    "days",
    "status",
    "notes",
    "created_by",
    "created_at",
    "confirmed_by",
    "confirmed_at",
    "closed_at",
]


def operator_for(user) -> Organisation:
    operator = map_operator_for_user(user)
    if operator is None:
        raise AccessDenied("Incidents are for the fleet operator's dispatchers and administrators")
    return operator


def incident_for(user, pk: int) -> Incident:
    incident = incident_get_for_operator(operator_id=operator_for(user).pk, pk=pk)
    if incident is None:
        raise NotFound("No incident matches the given id")
    return incident


class IncidentSerializer(serializers.ModelSerializer):
    hospital_name = serializers.CharField(source="hospital.name", read_only=True, default=None)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    confirmed_by = serializers.CharField(source="confirmed_by.username", read_only=True, default=None)

    class Meta:
        model = Incident
        fields = _FIELDS
        read_only_fields = fields


class IncidentDetailSerializer(IncidentSerializer):
    proposal = serializers.JSONField(read_only=True)
    units = serializers.SerializerMethodField()
    ranking_now = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [*_FIELDS, "proposal", "units", "ranking_now"]
        read_only_fields = fields

    def get_units(self, obj: Incident) -> list[dict[str, Any]]:
        return incident_unit_rows(obj)

    def get_ranking_now(self, obj: Incident) -> list[dict[str, Any]] | None:
        """The ranking as it stands now, while the incident awaits confirmation."""
        return surge_ranking(incident=obj) if obj.status == IncidentStatus.DECLARED else None


def incident_unit_rows(incident: Incident) -> list[dict[str, Any]]:
    """Units sent, with their live position (latest fix; else the depot)."""
    rows = []
    for row in incident_assignments(incident):
        unit = row.unit
        position = getattr(unit, "position", None)
        rows.append(
            {
                "unit_id": unit.pk,
                "unit_name": unit.name,
                "modality": unit.modality,
                "status": unit.status,
                "status_label": unit.get_status_display(),
                "eta_minutes": round(row.eta_minutes, 1),
                "expected_at": localtime(
                    row.dispatched_at + dt.timedelta(minutes=row.eta_minutes)
                ).isoformat(),
                "finishes_current_visit": row.finishes_current_visit,
                "dispatched_at": row.dispatched_at.isoformat(),
                "arrived_at": row.arrived_at.isoformat() if row.arrived_at else None,
                "released_at": row.released_at.isoformat() if row.released_at else None,
                "latitude": position.latitude if position else unit.depot_latitude,
                "longitude": position.longitude if position else unit.depot_longitude,
                "last_seen": localtime(position.device_time).isoformat() if position else None,
            }
        )
    return rows


class DeclareSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    needs = serializers.DictField(child=serializers.IntegerField(), help_text='e.g. {"CT": 2, "DX": 1}')
    starts_at = serializers.DateTimeField()
    days = serializers.IntegerField(default=3)
    hospital = serializers.PrimaryKeyRelatedField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.HOSPITAL), required=False, allow_null=True
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ConfirmSerializer(serializers.Serializer):
    units = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Unit ids; default the proposal's"
    )
    finish_current = serializers.DictField(
        child=serializers.BooleanField(),
        required=False,
        help_text="Unit id -> finish its current visit first (default: leave now)",
    )

    def validate_finish_current(self, value: dict) -> dict[int, bool]:
        try:
            return {int(key): flag for key, flag in value.items()}
        except ValueError:
            raise serializers.ValidationError("keys are unit ids") from None


class IncidentListCreateApi(APIView):
    """The operator's incidents; declaring one returns its proposal."""

    @extend_schema(responses={200: IncidentSerializer(many=True), 403: _REFUSED[403]})
    def get(self, request):
        operator = operator_for(request.user)
        rows = incident_list_for_operator(operator_id=operator.pk).select_related("confirmed_by")[:200]
        return Response(IncidentSerializer(rows, many=True).data)

    @extend_schema(
        request=DeclareSerializer,
        responses={
            201: IncidentDetailSerializer,
            400: OpenApiResponse(description="Invalid"),
            403: _REFUSED[403],
        },
    )
    def post(self, request):
        operator = operator_for(request.user)
        data = DeclareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incident = incident_declare(actor=request.user, operator=operator, **data.validated_data)
        return Response(IncidentDetailSerializer(incident).data, status=status.HTTP_201_CREATED)


class IncidentDetailApi(APIView):
    """One incident: proposal, units sent with live positions, the ranking now while declared."""

    @extend_schema(responses={200: IncidentDetailSerializer, **_REFUSED})
    def get(self, request, pk: int):
        return Response(IncidentDetailSerializer(incident_for(request.user, pk)).data)


class IncidentConfirmApi(APIView):
    """Dispatch: units sent, routine visits cancelled, hospitals told, re-plan asked."""

    @extend_schema(
        request=ConfirmSerializer,
        responses={
            200: IncidentDetailSerializer,
            409: OpenApiResponse(description="Not declared"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        incident = incident_for(request.user, pk)
        data = ConfirmSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = incident_confirm(
            actor=request.user,
            incident=incident,
            unit_ids=data.validated_data.get("units"),
            finish_current=data.validated_data.get("finish_current"),
        )
        return Response(IncidentDetailSerializer(done).data)


class IncidentCloseApi(APIView):
    """Close the incident; its units go back to routine planning."""

    @extend_schema(
        request=None,
        responses={
            200: IncidentDetailSerializer,
            409: OpenApiResponse(description="Already closed"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        done = incident_close(actor=request.user, incident=incident_for(request.user, pk))
        return Response(IncidentDetailSerializer(done).data)
