"""The QC officer's reconciliation queue: link each unmatched study to the order it fulfils."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.access import get_for_user
from core.exceptions import DomainError
from core.workspaces import workspace_required
from dicom.choices import OrderStatus
from dicom.models import Order
from dicom.selectors import reconciliation_list_audit, reconciliation_queue
from dicom.services.reconcile import study_link_order


def _candidates(study) -> list[Order]:
    """Open orders a study could fulfil: same modality, booked within a day of the study."""
    orders = Order.objects.filter(study__isnull=True).exclude(status=OrderStatus.CANCELLED)
    if study.study_date:
        orders = orders.filter(
            scheduled_date__range=(study.study_date - timedelta(days=1), study.study_date + timedelta(days=1))
        )
    modalities = [m for m in study.modalities.split("\\") if m]
    if modalities:
        orders = orders.filter(modality__in=modalities)
    if study.unit_id:
        orders = orders.filter(unit_id=study.unit_id)
    return list(orders.select_related("hospital", "unit").order_by("scheduled_date", "id")[:20])


@workspace_required("qc_officer")
@require_http_methods(["GET", "POST"])
def reconciliation(request):
    if request.method == "POST":
        study = reconciliation_queue(request.user).filter(pk=request.POST.get("study") or 0).first()
        order_id = request.POST.get("order", "")
        if study is None:
            messages.error(request, "That study is no longer waiting in the queue.")
        elif not order_id.isdigit():
            messages.error(request, "Choose the order this study fulfils.")
        else:
            try:
                order = get_for_user(request.user, Order.objects.all(), pk=int(order_id))
                study_link_order(actor=request.user, study=study, order=order, request=request)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Study linked to order {order.accession_number}; QC runs again.")
        return redirect("quality-reconciliation")
    studies = list(reconciliation_queue(request.user).select_related("unit", "uid_conflict_with")[:50])
    reconciliation_list_audit(request.user, studies, request=request)
    rows = [(study, _candidates(study)) for study in studies]
    return render(request, "dicom/reconciliation.html", {"rows": rows})
