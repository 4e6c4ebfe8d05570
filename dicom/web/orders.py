"""The hospital's orders page: book exams and see what is booked. The form calls the service."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from core.choices import Role
from core.exceptions import AccessDenied, DomainError
from core.models import User
from core.workspaces import workspace_required
from dicom.choices import BodyPart, OrderStatus, PatientSex, Priority
from dicom.selectors import order_list_audit, order_list_for_user, units_bookable_by_hospital
from dicom.services.orders import order_create
from fleet.choices import Modality
from fleet.models import Unit

PAGE_SIZE = 25

# Which form field a service refusal belongs to, by its error code; others go on top.
_ERROR_FIELDS = {
    "modality_mismatch": "unit",
    "scheduled_date_past": "scheduled_date",
    "birth_date_future": "patient_birth_date",
    "invalid_patient_name": "family_name",
    "invalid_patient_id": "patient_id",
    "invalid_requested_procedure": "requested_procedure",
    "invalid_body_part": "body_part",
    "invalid_priority": "priority",
    "invalid_patient_sex": "patient_sex",
    "invalid_modality": "modality",
    # Booking rules (dicom.services.order_booking): the van and its visit that day.
    "no_contract": "unit",
    "unit_withdrawn": "unit",
    "unit_unlicensed": "unit",
    "unit_qc_hold": "unit",
    "no_visit": "scheduled_date",
    "visit_cancelled": "scheduled_date",
    "visit_over": "scheduled_date",
}


class UnitChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Unit) -> str:
        return f"{obj.name} — {obj.get_modality_display()} ({obj.ae_title})"


class OrderBookingForm(forms.Form):
    unit = UnitChoiceField(queryset=Unit.objects.order_by("name"), label="Unit (van)")
    scheduled_date = forms.DateField(label="Exam date", widget=forms.DateInput(attrs={"type": "date"}))
    modality = forms.ChoiceField(choices=Modality.choices)
    body_part = forms.ChoiceField(choices=BodyPart.choices, label="Body part")
    requested_procedure = forms.CharField(max_length=64, label="Requested procedure")
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.ROUTINE)
    patient_id = forms.CharField(max_length=64, label="Patient ID")
    family_name = forms.CharField(max_length=64, label="Family name")
    given_name = forms.CharField(max_length=64, label="Given name", required=False)
    patient_sex = forms.ChoiceField(choices=PatientSex.choices, label="Sex")
    patient_birth_date = forms.DateField(label="Birth date", widget=forms.DateInput(attrs={"type": "date"}))
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # A fresh key per rendered form: a double submit books once.
    client_request_id = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, hospital_id: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("client_request_id", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        # Only vans of operators the hospital has a contract with: other operators' fleets are
        # theirs (tenancy), and booking on them is refused anyway.
        unit_field = cast(forms.ModelChoiceField, self.fields["unit"])
        unit_field.queryset = units_bookable_by_hospital(hospital_id)

    def _clean_name_part(self, field: str) -> str:
        value = self.cleaned_data[field].strip()
        if "^" in value or "=" in value:
            raise forms.ValidationError("Use letters, spaces, hyphens or apostrophes only.")
        return value

    def clean_family_name(self) -> str:
        return self._clean_name_part("family_name")

    def clean_given_name(self) -> str:
        return self._clean_name_part("given_name")

    def booking(self) -> dict[str, Any]:
        """The service's keyword arguments (the name as DICOM PN: FAMILY^GIVEN)."""
        data = dict(self.cleaned_data)
        family, given = data.pop("family_name"), data.pop("given_name")
        data["patient_name"] = f"{family}^{given}" if given else family
        return data

    def add_domain_error(self, exc: DomainError) -> None:
        field = _ERROR_FIELDS.get(exc.code)
        self.add_error(field if field in self.fields else None, exc.message)


class OrderFilterForm(forms.Form):
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    status = forms.ChoiceField(choices=[("", "Any status"), *OrderStatus.choices], required=False)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


@workspace_required(Role.HOSPITAL_USER)
def hospital_orders(request: HttpRequest) -> HttpResponse:
    page_url = reverse("hospital-orders")
    if request.method == "POST":
        form = OrderBookingForm(request.POST, hospital_id=cast(User, request.user).organisation_id)
        if form.is_valid():
            user = cast(User, request.user)  # signed in: workspace_required
            try:
                if user.organisation is None:
                    raise AccessDenied("Your account belongs to no hospital; only hospital users book exams")
                order = order_create(
                    actor=user, hospital=user.organisation, request=request, **form.booking()
                )
            except DomainError as exc:
                form.add_domain_error(exc)
            else:
                messages.success(
                    request,
                    f"Booked {order.accession_number}: {order.get_modality_display()} "
                    f"{order.get_body_part_display().lower()} on {order.scheduled_date:%Y-%m-%d}, "
                    f"{order.unit.name}.",
                )
                if _is_htmx(request):
                    response = HttpResponse()
                    response["HX-Redirect"] = page_url
                    return response
                return redirect(page_url)
        if _is_htmx(request):
            # 200, so htmx swaps the form with its errors in (it does not swap 4xx bodies).
            return render(request, "dicom/_order_form.html", {"form": form})
        status = 400
    else:
        form = OrderBookingForm(hospital_id=cast(User, request.user).organisation_id)
        status = 200

    filters = OrderFilterForm(request.GET or None)
    criteria: dict[str, Any] = {}
    if filters.is_bound and filters.is_valid():
        criteria = {k: v for k, v in filters.cleaned_data.items() if v}
    page = Paginator(order_list_for_user(request.user, **criteria), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = list(page.object_list)
    order_list_audit(request.user, rows, request=request)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "dicom/hospital_orders.html",
        {"form": form, "filters": filters, "page": page, "rows": rows, "query": query.urlencode()},
        status=status,
    )
