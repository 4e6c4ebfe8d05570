"""The hospital's service-request page: file a request for a van visit, follow it, cancel it, and
read what dispatch decided (notifications: booked, moved, cancelled, declined).

The hospital user's own organisation only (``workspace_required``); everything goes through the
request services, which check the same again.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.choices import Role
from core.exceptions import AccessDenied, DomainError, NotFound
from core.models import User
from core.workspaces import workspace_required
from fleet.models import RequestPriority, ServiceRequestStatus
from fleet.models.planning import PATIENTS_MAX, PATIENTS_MIN
from fleet.selectors_coverage import service_contract_modalities_for_user
from fleet.selectors_requests import service_request_get_for_user, service_request_list_for_user
from fleet.services.requests import HOSPITAL_CANCELLABLE, service_request_cancel, service_request_create
from telerad.selectors import notification_list_for_user
from telerad.services.notifications import notifications_mark_read

LIST_LIMIT = 100
NOTIFICATIONS_SHOWN = 20


class ServiceRequestForm(forms.Form):
    modality = forms.ChoiceField(choices=())
    patients = forms.IntegerField(min_value=PATIENTS_MIN, max_value=PATIENTS_MAX)
    earliest_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    latest_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    priority = forms.ChoiceField(choices=RequestPriority.choices, initial=RequestPriority.ROUTINE)
    notes = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, modalities: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["modality"].choices = modalities  # type: ignore[attr-defined]
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        self.fields["earliest_date"].initial = tomorrow
        self.fields["latest_date"].initial = tomorrow + dt.timedelta(days=13)

    def add_domain_error(self, exc: DomainError) -> None:
        field = (exc.extra or {}).get("field")
        self.add_error(field if field in self.fields else None, exc.message)


def _modalities(user: User) -> list[tuple[str, str]]:
    labels = {"CT": "CT", "MR": "MRI", "DX": "DR (digital radiography)"}
    return [(m, labels.get(m, m)) for m in service_contract_modalities_for_user(user)]


@workspace_required(Role.HOSPITAL_USER)
def hospital_requests(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    page_url = reverse("hospital-requests")
    modalities = _modalities(user)
    status = 200
    if request.method == "POST":
        form = ServiceRequestForm(request.POST, modalities=modalities)
        if form.is_valid():
            try:
                if user.organisation is None:
                    raise AccessDenied("Your account belongs to no hospital")
                created = service_request_create(
                    actor=user, hospital=user.organisation, request=request, **form.cleaned_data
                )
            except DomainError as exc:
                form.add_domain_error(exc)
            else:
                messages.success(
                    request,
                    f"Request #{created.pk} filed: {created.modality}, {created.patients} patients, "
                    f"{created.earliest_date:%Y-%m-%d} to {created.latest_date:%Y-%m-%d}.",
                )
                return redirect(page_url)
        status = 400
    else:
        form = ServiceRequestForm(modalities=modalities)
    rows = list(service_request_list_for_user(user)[:LIST_LIMIT])
    notifications = list(notification_list_for_user(user)[:NOTIFICATIONS_SHOWN])
    return render(
        request,
        "fleet/hospital_requests.html",
        {
            "form": form,
            "rows": rows,
            "cancellable": HOSPITAL_CANCELLABLE,
            "notifications": notifications,
            "unread": sum(1 for n in notifications if n.read_at is None),
            "statuses": ServiceRequestStatus,
        },
        status=status,
    )


@require_POST
@workspace_required(Role.HOSPITAL_USER)
def hospital_request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    user = cast(User, request.user)
    try:
        service_request = service_request_get_for_user(user, pk)
    except NotFound:
        raise Http404("No such request") from None  # another hospital's is not found either
    try:
        service_request_cancel(
            service_request=service_request,
            actor=user,
            reason=request.POST.get("reason", ""),
            request=request,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Request #{pk} cancelled.")
    return redirect(reverse("hospital-requests"))


@require_POST
@workspace_required(Role.HOSPITAL_USER)
def hospital_notifications_read(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)
    notifications_mark_read(user=user)
    return redirect(reverse("hospital-requests"))
