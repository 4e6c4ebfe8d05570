"""The reading worklist API: a reader's tasks, and claim / renew / release / assign.

Radiologists only; anyone else gets 403 before anything is looked up, so a hospital user (or
any other role) learns nothing about which tasks exist. A task id outside the reader's pools
is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from core.choices import Role
from core.exceptions import InvalidInput, NotFound
from fleet.choices import Modality
from telerad.choices import TaskStatus
from telerad.models import ReadingTask
from telerad.selectors import (
    tasks_assignable_by,
    tasks_visible_to_reader,
    worklist_for_reader,
    worklist_page,
)
from telerad.services.claims import task_claim, task_release, task_renew
from telerad.services.routing import task_assign

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50


class IsRadiologist(BasePermission):
    message = "The reading worklist is for radiologists."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.is_active and user.has_role(Role.RADIOLOGIST))


class MayAssign(BasePermission):
    message = "Assigning studies is for pool leads and administrators."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user.is_authenticated
            and user.is_active
            and (user.is_superuser or user.has_role(Role.RADIOLOGIST, Role.ADMIN))
        )


class WorklistFilterSerializer(serializers.Serializer):
    modality = serializers.ChoiceField(choices=Modality.choices, required=False)
    hospital = serializers.IntegerField(min_value=1, required=False)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    overdue = serializers.BooleanField(required=False, default=False)
    page = serializers.IntegerField(min_value=1, required=False)
    page_size = serializers.IntegerField(min_value=1, max_value=MAX_PAGE_SIZE, required=False)


def worklist_filters(params) -> dict[str, Any]:
    """Validated selector keyword arguments from query parameters (400 on a bad value)."""
    filters = WorklistFilterSerializer(data=params)
    filters.is_valid(raise_exception=True)
    data = filters.validated_data
    return {
        "modality": data.get("modality"),
        "hospital": data.get("hospital"),
        "status": data.get("status"),
        "overdue": data.get("overdue", False),
        "page": data.get("page", 1),
        "page_size": data.get("page_size", DEFAULT_PAGE_SIZE),
    }


def _person(user) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user.get_full_name() or user.username}


def task_row(task: ReadingTask, *, user, now: datetime) -> dict[str, Any]:
    """One worklist row (the shape the API returns and the page renders from)."""
    study = task.study
    claimed = task.status == TaskStatus.CLAIMED
    held_by_me = claimed and task.claimed_by_id == user.pk
    is_open = task.status in (TaskStatus.UNCLAIMED, TaskStatus.CLAIMED)
    assigned = task.assigned_to
    if task.sla_breached_at or (is_open and task.deadline < now):
        sla = "breached"
    elif task.sla_warned_at:
        sla = "warning"
    else:
        sla = "ok"
    return {
        "id": task.pk,
        "study": {
            "id": study.pk,
            "study_instance_uid": study.study_instance_uid,
            "accession_number": study.accession_number,
            "description": study.description,
            "study_date": study.study_date,
        },
        "hospital": {"id": task.hospital_id, "name": task.hospital.name},
        "pool": {"id": task.pool_id, "name": task.pool.name},
        "modality": task.modality,
        "body_part": task.body_part,
        "subspecialty": task.subspecialty,
        "priority": task.priority,
        "priority_rank": task.priority_rank,
        "status": task.status,
        "routed_at": task.routed_at,
        "deadline": task.deadline,
        "overdue": is_open and task.deadline < now,
        "sla": sla,
        "escalated": task.escalated_at is not None,
        "held_by": _person(task.claimed_by) if claimed else None,
        "held_by_me": held_by_me,
        "claim_expires_at": task.claim_expires_at if claimed else None,
        "assigned_to": (
            {"radiologist": assigned.pk, **(_person(assigned.user) or {})} if assigned is not None else None
        ),
        "viewer_url": f"/viewer/?StudyInstanceUIDs={study.study_instance_uid}" if held_by_me else None,
    }


def _row_for(task: ReadingTask, user) -> dict[str, Any]:
    fresh = worklist_for_reader(user, status=task.status).filter(pk=task.pk).first()
    if fresh is None:  # assigned away from the caller, or not theirs: the minimal truth
        return {"id": task.pk, "status": task.status}
    return task_row(fresh, user=user, now=timezone.now())


class WorklistApi(APIView):
    """The caller's worklist: priority, then deadline; open tasks unless ``status`` is given.

    Paginated by page number with ``next``/``previous`` links and no total count (counting is
    linear in the open tasks, and clients re-fetch the page on every live event).
    """

    permission_classes = [IsRadiologist]

    @extend_schema(
        parameters=[
            OpenApiParameter("modality", str, enum=Modality.values),
            OpenApiParameter("hospital", int),
            OpenApiParameter("status", str, enum=TaskStatus.values),
            OpenApiParameter("overdue", bool),
            OpenApiParameter("page", int),
            OpenApiParameter(
                "page_size", int, description=f"1..{MAX_PAGE_SIZE}, default {DEFAULT_PAGE_SIZE}"
            ),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        filters = worklist_filters(request.query_params)
        now = timezone.now()
        page = worklist_page(request.user, now=now, **filters)
        url = request.build_absolute_uri()
        return Response(
            {
                "page": page.number,
                "page_size": page.size,
                "next": replace_query_param(url, "page", page.number + 1) if page.has_next else None,
                "previous": (
                    replace_query_param(url, "page", page.number - 1) if page.has_previous else None
                ),
                "results": [task_row(task, user=request.user, now=now) for task in page.rows],
            }
        )


def _visible_task(user, task_id: int) -> ReadingTask:
    task = tasks_visible_to_reader(user).filter(pk=task_id).first()
    if task is None:
        raise NotFound("No reading task matches the given id")
    return task


class TaskClaimApi(APIView):
    """Claim the study for one lease (409 naming the holder if someone else has it)."""

    permission_classes = [IsRadiologist]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, task_id: int):
        task = task_claim(actor=request.user, task=_visible_task(request.user, task_id), request=request)
        return Response(_row_for(task, request.user))


class TaskRenewApi(APIView):
    """Extend the caller's lease (the viewer and the report editor call this while open)."""

    permission_classes = [IsRadiologist]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, task_id: int):
        task = task_renew(actor=request.user, task=_visible_task(request.user, task_id), request=request)
        return Response(_row_for(task, request.user))


class TaskReleaseApi(APIView):
    """Give the study back to the worklist (holder only)."""

    permission_classes = [IsRadiologist]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, task_id: int):
        task = task_release(actor=request.user, task=_visible_task(request.user, task_id), request=request)
        return Response(_row_for(task, request.user))


class AssignSerializer(serializers.Serializer):
    radiologist = serializers.IntegerField(min_value=1, help_text="the Radiologist profile id")


class TaskAssignApi(APIView):
    """The pool lead (or an admin) assigns the study to one eligible reader of the pool."""

    permission_classes = [MayAssign]

    @extend_schema(request=AssignSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, task_id: int):
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = (
            tasks_assignable_by(request.user)
            .select_related("pool", "study", "hospital")
            .filter(pk=task_id)
            .first()
        )
        if task is None:
            raise NotFound("No reading task you lead matches the given id")
        reader = (
            task.pool.readers.select_related("user").filter(pk=body.validated_data["radiologist"]).first()
        )
        if reader is None:
            raise InvalidInput("radiologist: no reader of this pool has that id")
        task = task_assign(actor=request.user, task=task, radiologist=reader, request=request)
        return Response(
            {
                "id": task.pk,
                "status": task.status,
                "assigned_to": {"radiologist": reader.pk, **(_person(reader.user) or {})},
            }
        )
