"""The QC officer's reconciliation queue: link each unmatched study to the order it fulfils, or
release a study held by a failed QC verdict (with the reason)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.exceptions import DomainError
from core.workspaces import workspace_required
from dicom.choices import IngestStatus
from dicom.selectors import (
    order_get_for_write,
    qc_held,
    reconciliation_candidates,
    reconciliation_list_audit,
    reconciliation_queue,
    study_qc_hold_findings,
)
from dicom.services.qc import study_qc_release
from dicom.services.reconcile import study_link_order


@workspace_required("qc_officer")
@require_http_methods(["GET", "POST"])
def reconciliation(request):
    if request.method == "POST" and request.POST.get("action") == "qc_release":
        return _release(request)
    if request.method == "POST":
        study = reconciliation_queue(request.user).filter(pk=request.POST.get("study") or 0).first()
        order_id = request.POST.get("order", "")
        if study is None:
            messages.error(request, "That study is no longer waiting in the queue.")
        elif not order_id.isdigit():
            messages.error(request, "Choose the order this study fulfils.")
        else:
            try:
                order = order_get_for_write(request.user, int(order_id))
                study_link_order(actor=request.user, study=study, order=order, request=request)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Study linked to order {order.accession_number}; QC runs again.")
        return redirect("quality-reconciliation")
    studies = list(
        reconciliation_queue(request.user)
        .select_related("unit", "uid_conflict_with", "order")
        .prefetch_related("qc_results")[:50]
    )
    reconciliation_list_audit(request.user, studies, request=request)
    rows = [
        (
            study,
            []
            if study.ingest_status == IngestStatus.MATCHED
            else reconciliation_candidates(request.user, study),
            study_qc_hold_findings(study) if study.ingest_status == IngestStatus.MATCHED else [],
        )
        for study in studies
    ]
    return render(request, "dicom/reconciliation.html", {"rows": rows})


def _release(request):
    study = reconciliation_queue(request.user).filter(qc_held(), pk=request.POST.get("study") or 0).first()
    if study is None:
        messages.error(request, "That study is no longer held by a QC failure.")
        return redirect("quality-reconciliation")
    try:
        study_qc_release(
            actor=request.user, study=study, reason=request.POST.get("reason", ""), request=request
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Study released despite its QC failure; it goes to the reading worklists.")
    return redirect("quality-reconciliation")
