"""The dispatcher's incident pages: list + declare form, and one incident's live view (docs/surge.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.choices import OrganisationKind
from core.exceptions import DomainError
from core.models import Organisation, User
from fleet.api.surge import incident_unit_rows
from fleet.choices import Modality
from fleet.models import IncidentStatus
from fleet.selectors_map import map_operator_for_user
from fleet.selectors_surge import incident_get_for_operator, incident_list_for_operator, surge_ranking
from fleet.services.surge import incident_close, incident_confirm, incident_declare
from fleet.web.views import OUTLINE


class DeclareForm(forms.Form):
    name = forms.CharField(max_length=200)
    latitude = forms.FloatField(min_value=-90, max_value=90)
    longitude = forms.FloatField(min_value=-180, max_value=180)
    starts_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    days = forms.IntegerField(min_value=1, max_value=30, initial=3)
    hospital = forms.ModelChoiceField(
        queryset=Organisation.objects.filter(kind=OrganisationKind.HOSPITAL, is_active=True).order_by("name"),
        required=False,
        help_text="Receiving hospital (optional)",
    )
    need_CT = forms.IntegerField(label="CT units", min_value=0, max_value=10, initial=0)
    need_MR = forms.IntegerField(label="MRI units", min_value=0, max_value=10, initial=0)
    need_DX = forms.IntegerField(label="DR units", min_value=0, max_value=10, initial=0)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def needs(self) -> dict[str, int]:
        return {
            m: self.cleaned_data[f"need_{m}"] for m in Modality.values if self.cleaned_data.get(f"need_{m}")
        }


def _operator(request: HttpRequest) -> Organisation:
    operator = map_operator_for_user(request.user)
    if operator is None:
        raise PermissionDenied("Incidents are for the operator's dispatchers and administrators.")
    return operator


@require_http_methods(["GET", "POST"])
@login_required
def incident_list_view(request: HttpRequest) -> HttpResponse:
    operator = _operator(request)
    error = ""
    if request.method == "POST":
        form = DeclareForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                incident = incident_declare(
                    actor=cast(User, request.user),
                    operator=operator,
                    name=data["name"],
                    latitude=data["latitude"],
                    longitude=data["longitude"],
                    needs=form.needs(),
                    starts_at=data["starts_at"],
                    days=data["days"],
                    hospital=data["hospital"],
                    notes=data["notes"],
                )
            except DomainError as exc:
                error = exc.message
            else:
                return redirect("fleet-incident", incident_id=incident.pk)
    else:
        form = DeclareForm(initial={"starts_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M")})
    incidents = incident_list_for_operator(operator_id=operator.pk)[:100]
    return render(request, "fleet/incidents.html", {"form": form, "error": error, "incidents": incidents})


def _confirm_args(request: HttpRequest) -> tuple[list[int] | None, dict[int, bool]]:
    try:
        units = [int(value) for value in request.POST.getlist("unit")]
        finish = {int(value): True for value in request.POST.getlist("finish")}
    except ValueError:
        raise Http404("Not a unit id") from None
    return units or None, {u: finish.get(u, False) for u in units}


@require_http_methods(["GET", "POST"])
@login_required
def incident_view(request: HttpRequest, incident_id: int) -> HttpResponse:
    operator = map_operator_for_user(request.user)
    incident = incident_get_for_operator(operator_id=operator.pk, pk=incident_id) if operator else None
    if incident is None:  # one answer for "not yours", "no such incident" and "not a dispatcher"
        raise Http404("No such incident")
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "confirm":
                units, finish = _confirm_args(request)
                incident_confirm(
                    actor=cast(User, request.user), incident=incident, unit_ids=units, finish_current=finish
                )
            elif action == "close":
                incident_close(actor=cast(User, request.user), incident=incident)
            else:
                error = "Unknown action"
        except DomainError as exc:
            error = exc.message
        if not error:
            return redirect("fleet-incident", incident_id=incident.pk)
        incident.refresh_from_db()
    now = timezone.now()
    proposal = incident.proposal or {}
    confirmed = proposal.get("confirmed")
    ranking = surge_ranking(incident=incident, at=now) if incident.status == IncidentStatus.DECLARED else []
    data: dict[str, Any] = {
        "incident": {
            "id": incident.pk,
            "name": incident.name,
            "latitude": incident.latitude,
            "longitude": incident.longitude,
            "status": incident.status,
        },
        "units": incident_unit_rows(incident),
        "visits": confirmed["cancelled_visits"] if confirmed else proposal.get("visits", []),
    }
    config = {
        "tile_url": getattr(settings, "MAP_TILE_URL", "") or "",
        "tile_attribution": getattr(settings, "MAP_TILE_ATTRIBUTION", "") or "",
        "ws_path": "/ws/fleet/map/",
        "outline_url": static(OUTLINE),
    }
    chosen = {c["unit_id"] for c in proposal.get("chosen", [])}
    context = {
        "incident": incident,
        "error": error,
        "ranking": ranking,
        "chosen": chosen,
        "proposal": proposal,
        "confirmed": confirmed,
        "data": data,
        "map_config": config,
        "window_end": (
            dt.date.fromisoformat(proposal["window"]["end"]) - dt.timedelta(days=1)
            if proposal.get("window")
            else None
        ),
    }
    return render(request, "fleet/incident.html", context)
