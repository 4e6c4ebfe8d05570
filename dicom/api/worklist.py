"""The Modality Worklist source: Orthanc's plugin asks which exams a van's scanner should see.

Not for users: the plugin's shared secret only, no session. The plugin turns each item into a
DICOM worklist answer (``orthanc.CreateDicom``) and lets Orthanc match it against the query.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.services import audit_record
from dicom.api.views import HasPluginSecret
from dicom.choices import OrderStatus, Priority
from dicom.models import Order
from dicom.selectors import worklist_for_aet

# PS3.5 AE: 1-16 characters of the default repertoire, no backslash, no leading/trailing space.
AET_RE = r"^[\x21-\x5b\x5d-\x7e](?:[\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$"
# DICOM DA, or a DA range with both ends (the plugin closes open-ended ranges).
DATE_RE = re.compile(r"^(\d{8})(?:-(\d{8}))?$")
# Orders are booked for a day, not a time slot: every step starts at the day's start, so that a
# query for the day with or without a time key matches.
DAY_START_TIME = "000000"
# Requested Procedure Priority (0040,1003) defined terms.
DICOM_PRIORITY: dict[str, str] = {Priority.STAT: "STAT", Priority.URGENT: "HIGH", Priority.ROUTINE: "ROUTINE"}
# Scheduled Procedure Step Status (0040,0020) defined terms.
DICOM_STEP_STATUS: dict[str, str] = {OrderStatus.SCHEDULED: "SCHEDULED", OrderStatus.IN_PROGRESS: "STARTED"}


def _da(value: dt.date) -> str:
    return value.strftime("%Y%m%d")


def worklist_item(order: Order) -> dict[str, Any]:
    """One worklist entry, keyed by DICOM keyword as ``orthanc.CreateDicom`` takes it."""
    return {
        "AccessionNumber": order.accession_number,
        "InstitutionName": order.hospital.name[:64],
        "PatientName": order.patient_name,
        "PatientID": order.patient_id,
        "PatientBirthDate": _da(order.patient_birth_date),
        "PatientSex": order.patient_sex,
        "StudyInstanceUID": order.study_instance_uid,
        "RequestedProcedureDescription": order.requested_procedure,
        # One requested procedure and one step per order, both named by the accession number.
        "RequestedProcedureID": order.accession_number,
        "RequestedProcedurePriority": DICOM_PRIORITY.get(order.priority, "ROUTINE"),
        "ScheduledProcedureStepSequence": [
            {
                "Modality": order.modality,
                "ScheduledStationAETitle": order.unit.ae_title,
                "ScheduledProcedureStepStartDate": _da(order.scheduled_date),
                "ScheduledProcedureStepStartTime": DAY_START_TIME,
                "ScheduledProcedureStepID": order.accession_number,
                "ScheduledProcedureStepDescription": order.requested_procedure,
                "ScheduledProcedureStepStatus": DICOM_STEP_STATUS.get(order.status, "SCHEDULED"),
            }
        ],
    }


def _parse_da(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise serializers.ValidationError(f"{text} is not a date (YYYYMMDD)") from None


class WorklistQuerySerializer(serializers.Serializer):
    aet = serializers.RegexField(AET_RE, help_text="the calling scanner's AE title")
    date = serializers.CharField(
        required=False,
        help_text="YYYYMMDD or YYYYMMDD-YYYYMMDD; default: today (the platform's time zone)",
    )

    def validate_date(self, value: str) -> tuple[dt.date, dt.date]:
        match = DATE_RE.match(value)
        if not match:
            raise serializers.ValidationError("date must be YYYYMMDD or YYYYMMDD-YYYYMMDD")
        start = _parse_da(match.group(1))
        end = _parse_da(match.group(2)) if match.group(2) else start
        return start, end


class OrthancWorklistApi(APIView):
    """The worklist of the unit with AE title ``aet`` for a day or a range of days."""

    authentication_classes: list = []
    permission_classes = [HasPluginSecret]

    @extend_schema(
        parameters=[
            OpenApiParameter("aet", str, required=True),
            OpenApiParameter("date", str, description="YYYYMMDD or YYYYMMDD-YYYYMMDD (default today)"),
        ],
        responses={
            200: OpenApiResponse(description='{"aet", "from", "to", "items": [DICOM keyword -> value]}'),
            400: OpenApiResponse(description="Bad AE title or date"),
            403: OpenApiResponse(description="Missing or wrong plugin secret"),
        },
    )
    def get(self, request):
        query = WorklistQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        aet = query.validated_data["aet"]
        today = timezone.localdate()
        start, end = query.validated_data.get("date", (today, today))
        orders = worklist_for_aet(aet, start, until=end)
        items = [worklist_item(order) for order in orders]
        # Demographics leave the platform for a scanner: one entry per query, like a list view.
        audit_record(
            actor=None,
            action="orthanc.worklist",
            object_type="dicom.worklist",
            object_id=aet,
            patient_data=bool(orders),
            details={"from": start, "to": end, "orders": [order.pk for order in orders]},
            request=request,
        )
        return Response({"aet": aet, "from": _da(start), "to": _da(end), "items": items})
