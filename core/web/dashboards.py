"""The QC officer's and administrator's dashboards page, and CSV export of its tables."""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.access import user_is_cross_organisation
from core.choices import OrganisationKind, Role
from core.models import Organisation
from core.quality.filters import DashboardFilters, FilterError
from core.quality.page import csv_value, dashboard_table, dashboards_all
from fleet.models import Unit
from telerad.models import ReadingPool

ROLES = (Role.QC_OFFICER, Role.ADMIN)


def _check_access(user) -> None:
    # Operator staff only: the dashboards aggregate every hospital's and every pool's work, and a
    # reading group's QC officer must not see other groups' readers.
    if not (user.is_superuser or (user.has_role(*ROLES) and user_is_cross_organisation(user))):
        raise PermissionDenied(
            "The quality dashboards are for the operator's QC officers and administrators."
        )


def _choices() -> dict[str, list[tuple[int, str]]]:
    return {
        "hospital": list(
            Organisation.objects.filter(kind=OrganisationKind.HOSPITAL)
            .order_by("name")
            .values_list("id", "name")
        ),
        "unit": list(Unit.objects.order_by("name").values_list("id", "name")),
        "pool": list(ReadingPool.objects.order_by("name").values_list("id", "name")),
    }


_LABELS = {"hospital": "Hospital", "unit": "Unit", "pool": "Reading pool"}


def _selects(choices: dict, params) -> list[dict]:
    """The three selects of the filter form, with the chosen option marked."""
    return [
        {
            "name": key,
            "label": _LABELS[key],
            "options": [(pk, name, str(pk) == params.get(key, "")) for pk, name in options],
        }
        for key, options in choices.items()
    ]


def _parse(request: HttpRequest, choices: dict) -> DashboardFilters:
    filters = DashboardFilters.from_query(request.GET)
    for key, options in choices.items():
        value = getattr(filters, f"{key}_id")
        if value is not None and value not in {pk for pk, _ in options}:
            raise FilterError(f"{key}: there is no {key} with id {value}")
    return filters


def _csv(filters: DashboardFilters, key: str) -> HttpResponse:
    table = dashboard_table(filters, key)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{key}_{filters.start.isoformat()}_{filters.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow([label for _, label in table.columns])
    for row in table.rows:
        writer.writerow([csv_value(row.get(column)) for column, _ in table.columns])
    return response


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    _check_access(request.user)
    choices = _choices()
    try:
        filters = _parse(request, choices)
        if "export" in request.GET:
            return _csv(filters, request.GET["export"])
    except FilterError as exc:
        if "export" in request.GET:
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        context: dict[str, Any] = {
            "error": exc.message,
            "selects": _selects(choices, request.GET),
            "start": request.GET.get("start", ""),
            "end": request.GET.get("end", ""),
        }
        return render(request, "core/dashboard.html", context, status=400)
    query = filters.as_query()
    dashboards = dashboards_all(filters)
    for dash in dashboards:
        for table in dash.tables:
            table.export_url = "?" + urlencode({**query, "export": table.key})
    context = {
        "filters": filters,
        "dashboards": dashboards,
        "selects": _selects(choices, query),
        "start": query["start"],
        "end": query["end"],
    }
    return render(request, "core/dashboard.html", context)
