"""The QC officer's and administrator's dashboards page, and CSV export of its tables.

Tenant-scoped (docs/dashboards.md): an operator's QC officers and administrators see their own
operator's units, visits, studies and the reading of those studies; superusers see the platform.
"""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.access import user_is_platform_wide, user_organisation_kind
from core.choices import OrganisationKind, Role
from core.quality.filters import DashboardFilters, FilterError
from core.quality.page import csv_value, dashboard_table, dashboards_all
from core.quality.scope import hospitals_in_scope, pools_in_scope, units_in_scope

ROLES = (Role.QC_OFFICER, Role.ADMIN)


def _operator_scope(user) -> int | None:
    """The operator whose data the user may see (None: platform-wide, a superuser); else 403.

    Only an operator's QC officers and administrators, whose dashboards cover their own
    operator. A reading group's QC officer is refused: the dashboards are built around the vans'
    work (its pools read several operators' studies)."""
    if user_is_platform_wide(user):
        return None
    if user.has_role(*ROLES) and user_organisation_kind(user) == OrganisationKind.OPERATOR:
        return user.organisation_id
    raise PermissionDenied("The quality dashboards are for the operator's QC officers and administrators.")


def _tenancy(user, operator_id: int | None) -> str:
    """The operator's name for the page's heading ("" when platform-wide)."""
    return "" if operator_id is None else user.organisation.name


def _choices(operator_id: int | None) -> dict[str, list[tuple[int, str]]]:
    """The filter selects: only what is in the viewer's tenancy (core/quality/scope.py)."""
    return {
        "hospital": list(hospitals_in_scope(operator_id).order_by("name").values_list("id", "name")),
        "unit": list(units_in_scope(operator_id).order_by("name").values_list("id", "name")),
        "pool": list(pools_in_scope(operator_id).order_by("name").values_list("id", "name")),
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


def _parse(request: HttpRequest, choices: dict, operator_id: int | None) -> DashboardFilters:
    # The tenancy comes from the user, never from the query string.
    filters = DashboardFilters.from_query(request.GET).for_operator(operator_id)
    # An id outside the tenancy is answered exactly as one that does not exist.
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
    operator_id = _operator_scope(request.user)
    choices = _choices(operator_id)
    try:
        filters = _parse(request, choices, operator_id)
        if "export" in request.GET:
            return _csv(filters, request.GET["export"])
    except FilterError as exc:
        if "export" in request.GET:
            return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
        context: dict[str, Any] = {
            "tenancy": _tenancy(request.user, operator_id),
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
        "tenancy": _tenancy(request.user, operator_id),
        "filters": filters,
        "dashboards": dashboards,
        "selects": _selects(choices, query),
        "start": query["start"],
        "end": query["end"],
    }
    return render(request, "core/dashboard.html", context)
