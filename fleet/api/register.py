"""Fleet register API: units (dispatchability, QC hold, state), licences, crew credentials,
maintenance windows, daily QC and visit crews.

Reads: staff of the unit's operator. Writes: its dispatchers and administrators; daily QC: its
technologists, QC officers and administrators. Other organisations' ids are 404.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import InvalidInput
from fleet.api.register_serializers import (
    CrewCredentialCreateSerializer,
    CrewCredentialSerializer,
    EquipmentQCCreateSerializer,
    EquipmentQCSerializer,
    LicenceCreateSerializer,
    LicenceSerializer,
    MaintenanceWindowCreateSerializer,
    MaintenanceWindowSerializer,
    TransitionSerializer,
    UnitSerializer,
    UnitStatusChangeSerializer,
    VisitCrewSerializer,
)
from fleet.selectors import (
    crew_member_get_for_user,
    unit_get_for_user,
    unit_list_for_user,
    unit_maintenance_windows,
    unit_qc_checks,
    visit_check_crew,
    visit_crew_candidates,
    visit_get_for_user,
)
from fleet.services import (
    crew_credential_add,
    equipment_qc_record,
    licence_add,
    maintenance_window_add,
    unit_transition,
    visit_crew_assign,
)

_REFUSED = {
    403: OpenApiResponse(description="Not allowed for your role"),
    404: OpenApiResponse(description="No such object in your organisation"),
}


def _unit_out(request, unit) -> dict:
    return UnitSerializer(unit, context={"request": request, "at": timezone.now()}).data


class UnitListApi(APIView):
    """The operator's units with dispatchability and QC hold, and the reasons."""

    @extend_schema(responses=UnitSerializer(many=True))
    def get(self, request):
        at = timezone.now()
        units = unit_list_for_user(request.user, at=at)
        return Response(UnitSerializer(units, many=True, context={"request": request, "at": at}).data)


class UnitDetailApi(APIView):
    @extend_schema(responses={200: UnitSerializer, **_REFUSED})
    def get(self, request, pk: int):
        return Response(_unit_out(request, unit_get_for_user(request.user, pk)))


class UnitTransitionApi(APIView):
    """Change the unit's status (the state machine refuses illegal moves with 409)."""

    @extend_schema(
        request=TransitionSerializer,
        responses={
            200: UnitSerializer,
            409: OpenApiResponse(
                description="Illegal transition, not dispatchable, QC hold, or a concurrent change"
            ),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = TransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unit = unit_get_for_user(request.user, pk)
        unit_transition(
            unit=unit,
            to_status=data.validated_data["to"],
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        return Response(_unit_out(request, unit_get_for_user(request.user, pk)))


class UnitStatusChangeListApi(APIView):
    @extend_schema(responses={200: UnitStatusChangeSerializer(many=True), **_REFUSED})
    def get(self, request, pk: int):
        unit = unit_get_for_user(request.user, pk)
        changes = unit.status_changes.select_related("actor")[:100]
        return Response(UnitStatusChangeSerializer(changes, many=True).data)


class UnitLicenceListCreateApi(APIView):
    @extend_schema(responses={200: LicenceSerializer(many=True), **_REFUSED})
    def get(self, request, pk: int):
        unit = unit_get_for_user(request.user, pk)
        return Response(LicenceSerializer(unit.licences.all(), many=True).data)

    @extend_schema(request=LicenceCreateSerializer, responses={201: LicenceSerializer, **_REFUSED})
    def post(self, request, pk: int):
        data = LicenceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unit = unit_get_for_user(request.user, pk)
        licence = licence_add(actor=request.user, unit=unit, **data.validated_data)
        return Response(LicenceSerializer(licence).data, status=status.HTTP_201_CREATED)


class UnitMaintenanceListCreateApi(APIView):
    @extend_schema(responses={200: MaintenanceWindowSerializer(many=True), **_REFUSED})
    def get(self, request, pk: int):
        unit = unit_get_for_user(request.user, pk)
        windows = unit_maintenance_windows(unit)
        return Response(MaintenanceWindowSerializer(windows, many=True).data)

    @extend_schema(
        request=MaintenanceWindowCreateSerializer,
        responses={
            201: MaintenanceWindowSerializer,
            409: OpenApiResponse(description="Overlaps a window"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = MaintenanceWindowCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unit = unit_get_for_user(request.user, pk)
        window = maintenance_window_add(actor=request.user, unit=unit, **data.validated_data)
        return Response(MaintenanceWindowSerializer(window).data, status=status.HTTP_201_CREATED)


class UnitQCListCreateApi(APIView):
    """Daily phantom checks: list the latest; record one (the platform computes pass/fail)."""

    @extend_schema(responses={200: EquipmentQCSerializer(many=True), **_REFUSED})
    def get(self, request, pk: int):
        unit = unit_get_for_user(request.user, pk)
        checks = unit_qc_checks(unit)
        return Response(EquipmentQCSerializer(checks, many=True).data)

    @extend_schema(
        request=EquipmentQCCreateSerializer,
        responses={
            201: EquipmentQCSerializer,
            400: OpenApiResponse(description="Missing measurements"),
            **_REFUSED,
        },
    )
    def post(self, request, pk: int):
        data = EquipmentQCCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        unit = unit_get_for_user(request.user, pk)
        check = equipment_qc_record(actor=request.user, unit=unit, **data.validated_data)
        return Response(EquipmentQCSerializer(check).data, status=status.HTTP_201_CREATED)


class CrewCredentialListCreateApi(APIView):
    @extend_schema(responses={200: CrewCredentialSerializer(many=True), **_REFUSED})
    def get(self, request, pk: int):
        member = crew_member_get_for_user(request.user, pk)
        return Response(CrewCredentialSerializer(member.credentials.all(), many=True).data)

    @extend_schema(
        request=CrewCredentialCreateSerializer, responses={201: CrewCredentialSerializer, **_REFUSED}
    )
    def post(self, request, pk: int):
        data = CrewCredentialCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = crew_member_get_for_user(request.user, pk)
        credential = crew_credential_add(actor=request.user, crew_member=member, **data.validated_data)
        return Response(CrewCredentialSerializer(credential).data, status=status.HTTP_201_CREATED)


class VisitCrewApi(APIView):
    """A visit's crew and what it lacks; the dispatcher sets it (PUT replaces it)."""

    @extend_schema(
        responses={200: OpenApiResponse(description='{"crew": [ids], "problems": [...]}'), **_REFUSED}
    )
    def get(self, request, pk: int):
        visit = visit_get_for_user(request.user, pk)
        crew = sorted(visit.crew.values_list("pk", flat=True))
        return Response({"crew": crew, "problems": visit_check_crew(visit)})

    @extend_schema(
        request=VisitCrewSerializer, responses={200: OpenApiResponse(description="crew and problems")}
    )
    def put(self, request, pk: int):
        data = VisitCrewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        visit = visit_get_for_user(request.user, pk)
        ids = data.validated_data["crew"]
        crew = list(visit_crew_candidates(visit, ids))
        if len(crew) != len(set(ids)):
            missing = sorted(set(ids) - {member.pk for member in crew})
            raise InvalidInput(f"No crew member of this operator with id(s) {missing}", code="invalid_crew")
        problems = visit_crew_assign(actor=request.user, visit=visit, crew=crew)
        return Response({"crew": sorted(member.pk for member in crew), "problems": problems})
