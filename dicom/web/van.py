"""The van's QC page: the unit's latest studies and their QC verdicts, updated live."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render

from core.workspaces import workspace_required
from dicom.selectors import unit_for_technologist, unit_recent_studies, user_may_watch_unit
from fleet.models import Unit


@workspace_required("technologist")
def van_qc(request):
    unit_id = request.GET.get("unit")
    unit: Unit | None
    if unit_id:
        if not unit_id.isdigit():
            raise PermissionDenied("unit must be a unit id")
        unit = get_object_or_404(Unit, pk=int(unit_id))
    else:
        unit = unit_for_technologist(request.user)
    if unit is None:
        return render(request, "dicom/van_qc.html", {"unit": None, "studies": []})
    if not user_may_watch_unit(request.user, unit.pk):
        raise PermissionDenied("You are not on this unit's crew.")
    studies = unit_recent_studies(user=request.user, unit=unit, request=request)
    rows = [(study, next(iter(study.qc_results.all()), None)) for study in studies]
    template = "dicom/_van_qc_rows.html" if request.headers.get("HX-Request") else "dicom/van_qc.html"
    return render(request, template, {"unit": unit, "rows": rows})
