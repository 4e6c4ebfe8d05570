"""Reads of the DICOM domain. Patient data is reached through functions that audit."""

from __future__ import annotations

from django.db.models import QuerySet

from core.access import scope_for_user, user_is_cross_organisation
from core.services import audit_record
from dicom.choices import IngestStatus
from dicom.models import Study
from fleet.models import CrewMember, Unit


def user_may_watch_unit(user, unit_id: int) -> bool:
    """Technologists of the unit's crew, and the operator's dispatch/QC/admin staff."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    unit = Unit.objects.filter(pk=unit_id).first()
    if unit is None or user.organisation_id != unit.operator_id:
        return False
    if user.has_role("dispatcher", "qc_officer", "admin"):
        return True
    return user.has_role("technologist") and CrewMember.objects.filter(user=user, unit=unit).exists()


def unit_for_technologist(user) -> Unit | None:
    member = CrewMember.objects.filter(user=user, unit__isnull=False).select_related("unit").first()
    return member.unit if member else None


def unit_recent_studies(*, user, unit: Unit, request=None, limit: int = 25) -> list[Study]:
    """The unit's latest studies with their newest QC result, for the van's QC page (audited)."""
    studies = list(
        Study.objects.filter(unit=unit)
        .select_related("order")
        .prefetch_related("qc_results")
        .order_by("-ingested_at")[:limit]
    )
    if studies:
        audit_record(
            actor=user,
            action="unit.qc_view",
            obj=unit,
            patient_data=True,
            details={"studies": [s.pk for s in studies]},
            request=request,
        )
    return studies


def reconciliation_queue(user) -> QuerySet[Study]:
    """Unmatched studies, oldest first; only cross-organisation staff reach all of them."""
    queryset = Study.objects.filter(ingest_status=IngestStatus.UNMATCHED).order_by("ingested_at")
    if user_is_cross_organisation(user):
        return queryset
    return scope_for_user(user, queryset)
