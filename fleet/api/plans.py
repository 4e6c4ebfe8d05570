"""Planner runs: ask for one, follow it, review it (locks), publish it.

``POST /api/plans/`` (202), ``GET /api/plans/`` (the operator's recent plans),
``GET /api/plans/{id}/`` (progress, result), ``POST /api/plans/{id}/locks/``,
``POST /api/plans/{id}/publish/``. The operator's dispatchers and administrators only; to anyone
else a plan id reveals nothing (404).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import AccessDenied
from fleet.models import Plan
from fleet.selectors_plans import plan_get_for_user, plan_list_for_user
from fleet.services.plans import plan_lock_set, plan_publish, plan_request

LIST_LIMIT = 50


class PlanRequestSerializer(serializers.Serializer):
    start_date = serializers.DateField()
    days = serializers.IntegerField()
    time_limit_s = serializers.FloatField(required=False, default=5.0)
    base_plan = serializers.IntegerField(required=False, help_text="Keep this plan's locked visits")


class PlanLockSerializer(serializers.Serializer):
    request_id = serializers.CharField(max_length=20)
    locked = serializers.BooleanField()


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "id",
            "kind",
            "reason",
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
            "excluded_units",
            "base_plan",
            "auto_publish",
            "created_at",
            "started_at",
            "finished_at",
            "published_at",
            "publish_summary",
        ]


class PlanSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = [
            "id",
            "kind",
            "reason",
            "start_date",
            "days",
            "status",
            "progress",
            "message",
            "published_at",
        ]


class PlanListCreateApi(APIView):
    """Ask for a plan of your operator's fleet (computed in the background); list recent plans."""

    @extend_schema(responses=PlanSummarySerializer(many=True))
    def get(self, request):
        plans = plan_list_for_user(request.user).order_by("-created_at", "-id")[:LIST_LIMIT]
        return Response(PlanSummarySerializer(plans, many=True).data)

    @extend_schema(request=PlanRequestSerializer, responses={202: PlanSerializer})
    def post(self, request):
        body = PlanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operator = request.user.organisation
        if operator is None:
            raise AccessDenied("Your account belongs to no operator")
        data = dict(body.validated_data)
        base_id = data.pop("base_plan", None)
        base_plan = plan_get_for_user(request.user, base_id) if base_id is not None else None
        plan = plan_request(actor=request.user, operator=operator, base_plan=base_plan, **data)
        plan.refresh_from_db()  # with eager tasks (no Redis) it is already computed
        return Response(PlanSerializer(plan).data, status=status.HTTP_202_ACCEPTED)


class PlanDetailApi(APIView):
    """A plan of your operator: status and progress while it runs, the result once done."""

    @extend_schema(responses=PlanSerializer)
    def get(self, request, pk: int):
        return Response(PlanSerializer(plan_get_for_user(request.user, pk)).data)


class PlanLockApi(APIView):
    """Lock (keep in every re-run and re-plan) or unlock one visit of a plan under review."""

    @extend_schema(request=PlanLockSerializer, responses=PlanSerializer)
    def post(self, request, pk: int):
        plan = plan_get_for_user(request.user, pk)
        body = PlanLockSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        plan = plan_lock_set(actor=request.user, plan=plan, **body.validated_data)
        return Response(PlanSerializer(plan).data)


class PlanPublishApi(APIView):
    """Publish a done plan: visits created or moved, requests scheduled, hospitals notified."""

    @extend_schema(request=None, responses=PlanSerializer)
    def post(self, request, pk: int):
        plan = plan_publish(actor=request.user, plan=plan_get_for_user(request.user, pk))
        return Response(PlanSerializer(plan).data)
