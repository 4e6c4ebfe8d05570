"""Reports API: radiologists write (draft, preliminary, sign, addenda); readers get JSON or PDF.

Thin views: validate the body, find the object through an access function (out of scope is
404), call one service, serialise. Refusals come from the services as domain errors.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from telerad.models import Addendum, Report
from telerad.report_templates import template_for, template_get
from telerad.reports_render import report_html, report_pdf
from telerad.selectors_reports import (
    addendum_get_for_write,
    report_for_task_get,
    report_get_for_user,
    report_get_for_write,
    report_turnaround,
    task_get_for_report,
)
from telerad.services.reports import (
    addendum_add,
    addendum_sign,
    report_mark_preliminary,
    report_save_draft,
    report_sign,
)


class AddendumSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)

    class Meta:
        model = Addendum
        fields = ["id", "report", "author", "text", "created_at", "signed_at"]
        read_only_fields = fields


class ReportSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True)
    accession_number = serializers.CharField(source="study.accession_number", read_only=True)
    addenda = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()
    turnaround = serializers.SerializerMethodField()
    template_definition = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "task",
            "study",
            "accession_number",
            "status",
            "template",
            "template_definition",
            "fields",
            "free_text",
            "critical",
            "version",
            "author",
            "created_at",
            "updated_at",
            "signed_at",
            "addenda",
            "versions",
            "turnaround",
        ]
        read_only_fields = fields

    def get_addenda(self, report: Report) -> list[dict[str, Any]]:
        # Unsigned addenda are shown only to their author.
        user = self.context.get("user")
        addenda = [a for a in report.addenda.all() if a.signed_at or (user and a.author_id == user.pk)]
        return AddendumSerializer(addenda, many=True).data

    def get_versions(self, report: Report) -> list[dict[str, Any]]:
        return [
            {"version": v.version, "status": v.status, "saved_by": v.saved_by_id, "saved_at": v.saved_at}
            for v in report.versions.order_by("version")
        ]

    def get_turnaround(self, report: Report) -> dict[str, Any]:
        return report_turnaround(report)

    def get_template_definition(self, report: Report) -> dict[str, Any]:
        return template_get(report.template).as_dict()


class ReportWriteSerializer(serializers.Serializer):
    fields = serializers.DictField(required=False, default=dict)
    free_text = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class PreliminarySerializer(serializers.Serializer):
    fields = serializers.DictField(required=False)
    free_text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class SignSerializer(serializers.Serializer):
    critical = serializers.BooleanField(required=False, default=False)
    critical_summary = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class AddendumCreateSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=True)


def _report_body(report: Report, request: Request) -> dict[str, Any]:
    return ReportSerializer(report, context={"user": request.user}).data


class TaskReportApi(APIView):
    """The report of a reading task: read it (with its template), or save it as a draft."""

    @extend_schema(responses={200: OpenApiResponse(description="{task, template, report|null}")})
    def get(self, request: Request, task_id: int) -> Response:
        task = task_get_for_report(request.user, task_id)
        report = report_for_task_get(request.user, task, request=request)
        template = template_get(report.template) if report else template_for(task.modality, task.body_part)
        return Response(
            {
                "task": task.pk,
                "template": template.as_dict(),
                "report": _report_body(report, request) if report else None,
            }
        )

    @extend_schema(
        request=ReportWriteSerializer,
        responses={
            200: ReportSerializer,
            400: OpenApiResponse(description="A field is invalid (named in `field`)"),
            403: OpenApiResponse(description="Not the claimant"),
            409: OpenApiResponse(description="Claim expired/missing, or the report is final"),
        },
    )
    def put(self, request: Request, task_id: int) -> Response:
        body = ReportWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = task_get_for_report(request.user, task_id)
        report = report_save_draft(actor=request.user, task=task, request=request, **body.validated_data)
        return Response(_report_body(report, request))


class TaskReportPreliminaryApi(APIView):
    """Mark the task's report preliminary (all required fields present)."""

    @extend_schema(request=PreliminarySerializer, responses={200: ReportSerializer})
    def post(self, request: Request, task_id: int) -> Response:
        body = PreliminarySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = task_get_for_report(request.user, task_id)
        report = report_mark_preliminary(
            actor=request.user, task=task, request=request, **body.validated_data
        )
        return Response(_report_body(report, request))


class TaskReportSignApi(APIView):
    """Sign the task's report: final and immutable; optionally flag a critical finding."""

    @extend_schema(
        request=SignSerializer,
        responses={
            200: ReportSerializer,
            400: OpenApiResponse(description="Required field missing / no summary for a critical finding"),
            403: OpenApiResponse(description="Not the claimant"),
            409: OpenApiResponse(description="Claim expired/missing, or already signed"),
        },
    )
    def post(self, request: Request, task_id: int) -> Response:
        body = SignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = task_get_for_report(request.user, task_id)
        report = report_sign(actor=request.user, task=task, request=request, **body.validated_data)
        return Response(_report_body(report, request))


class ReportDetailApi(APIView):
    """A report as JSON (audited; out of scope is 404)."""

    @extend_schema(responses={200: ReportSerializer, 404: OpenApiResponse(description="No such report")})
    def get(self, request: Request, report_id: int) -> Response:
        report = report_get_for_user(request.user, report_id, request=request)
        return Response(_report_body(report, request))


class ReportPdfApi(APIView):
    """A report as PDF (audited)."""

    @extend_schema(responses={(200, "application/pdf"): OpenApiResponse(description="The report")})
    def get(self, request: Request, report_id: int) -> HttpResponse:
        report = report_get_for_user(request.user, report_id, request=request, action="report.pdf")
        response = HttpResponse(report_pdf(report), content_type="application/pdf")
        name = report.study.accession_number or f"report-{report.pk}"
        response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
        return response


class ReportHtmlApi(APIView):
    """A report as a standalone HTML document (audited)."""

    @extend_schema(responses={(200, "text/html"): OpenApiResponse(description="The report")})
    def get(self, request: Request, report_id: int) -> HttpResponse:
        report = report_get_for_user(request.user, report_id, request=request, action="report.html")
        return HttpResponse(report_html(report), content_type="text/html; charset=utf-8")


class ReportAddendaApi(APIView):
    """Add an addendum to a final report (its signer or a radiologist of the pool)."""

    @extend_schema(request=AddendumCreateSerializer, responses={201: AddendumSerializer})
    def post(self, request: Request, report_id: int) -> Response:
        body = AddendumCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            report = report_get_for_write(request.user, report_id)
            addendum = addendum_add(actor=request.user, report=report, request=request, **body.validated_data)
        return Response(AddendumSerializer(addendum).data, status=status.HTTP_201_CREATED)


class AddendumSignApi(APIView):
    """Sign an addendum (its author); it is immutable afterwards."""

    @extend_schema(request=None, responses={200: AddendumSerializer})
    def post(self, request: Request, addendum_id: int) -> Response:
        addendum = addendum_get_for_write(request.user, addendum_id)
        addendum = addendum_sign(actor=request.user, addendum=addendum, request=request)
        return Response(AddendumSerializer(addendum).data)
