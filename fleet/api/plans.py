"""Planner runs: ``POST /api/plans/`` (dispatchers, 202) and ``GET /api/plans/{id}/`` (progress, result)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import AccessDenied
from fleet.access import REGISTER_WRITER_ROLES
from fleet.models import Plan
from fleet.services.plans import plan_request


class PlanRequestSerializer(serializers.Serializer):
    start_date = serializers.DateField()
    days = serializers.IntegerField()
    time_limit_s = serializers.FloatField(required=False, default=5.0)


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "id",
            "start_date",
            "days",
            "time_limit_s",
            "status",
            "progress",
            "message",
            "inputs",
            "visits",
            "unserved",
            "stats",
            "created_at",
            "started_at",
            "finished_at",
        ]


class PlanListCreateApi(APIView):
    """Ask for a plan of your operator's fleet; it is computed in the background."""

    @extend_schema(request=PlanRequestSerializer, responses={202: PlanSerializer})
    def post(self, request):
        body = PlanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operator = request.user.organisation
        if operator is None:
            raise AccessDenied("Your account belongs to no operator")
        plan = plan_request(actor=request.user, operator=operator, **body.validated_data)
        plan.refresh_from_db()  # with eager tasks (no Redis) it is already computed
        return Response(PlanSerializer(plan).data, status=status.HTTP_202_ACCEPTED)


class PlanDetailApi(APIView):
    """A plan of your operator: status and progress while it runs, the result once done."""

    @extend_schema(responses=PlanSerializer)
    def get(self, request, pk: int):
        # The planners of the operator (fleet.access), and nobody else: an id reveals nothing.
        user = request.user
        plan = Plan.objects.filter(pk=pk).first()
        may_read = plan is not None and (
            user.is_superuser
            or (user.organisation_id == plan.operator_id and user.has_role(*REGISTER_WRITER_ROLES))
        )
        if not may_read:
            raise NotFound("No plan matches the given id")
        return Response(PlanSerializer(plan).data)
