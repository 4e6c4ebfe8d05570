"""The dispatcher's coverage page: each contracted hospital against its interval, and unit withdrawal.

docs/coverage-exit.md. Access as the fleet map: the operator's dispatchers and administrators.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.choices import Role
from core.exceptions import AccessDenied, DomainError
from core.models import Organisation, User
from fleet.models import WithdrawalOutcome
from fleet.selectors_coverage import (
    DUE_SOON_DAYS,
    coverage_rows,
    coverage_unit,
    coverage_units,
    coverage_withdrawal_done,
)
from fleet.selectors_map import map_operator_for_user
from fleet.services.region_exit import region_exit_refusal, region_service_end
from fleet.services.withdrawal import ON_THE_ROAD, unit_withdraw, withdrawal_refusal
from fleet.web.views import OUTLINE


def _operator(request: HttpRequest) -> Organisation:
    operator = map_operator_for_user(request.user)
    if operator is None:
        raise PermissionDenied("The coverage page is for the operator's dispatchers and administrators.")
    return operator


def _plan_url(plan_id: int | None) -> str:
    if not plan_id:
        return ""
    try:
        return reverse("fleet-plan", args=[plan_id])
    except NoReverseMatch:  # the plans pages are not routed: the documented path still names it
        return f"/fleet/plans/{plan_id}/"


def _context(request: HttpRequest, operator: Organisation, **extra: Any) -> dict[str, Any]:
    on = timezone.localdate()
    rows = coverage_rows(on=on, operator_id=operator.pk)
    units = coverage_units(operator_id=operator.pk)
    user = cast(User, request.user)  # login_required: never anonymous here
    return {
        "operator": operator,
        "on": on,
        "rows": rows,
        "due_soon_days": DUE_SOON_DAYS,
        "counts": {
            state: sum(1 for r in rows if r.state == state) for state in ("overdue", "due_soon", "ok")
        },
        "units": [
            {
                "unit": unit,
                "on_the_road": unit.status in ON_THE_ROAD,
                "status_label": unit.get_status_display(),
            }
            for unit in units
        ],
        "can_override": bool(user.is_superuser or user.has_role(Role.ADMIN)),
        "regions": [
            {"code": code, "contracts": count}
            for code, count in sorted(Counter(row.region_code for row in rows).items())
        ],
        "coverage_data": [row.as_dict() for row in rows],
        "map_config": {
            "tile_url": getattr(settings, "MAP_TILE_URL", "") or "",
            "tile_attribution": getattr(settings, "MAP_TILE_ATTRIBUTION", "") or "",
            "outline_url": static(OUTLINE),
        },
        **extra,
    }


@require_GET
@login_required
def coverage_page(request: HttpRequest) -> HttpResponse:
    operator = _operator(request)
    done = None
    if (wanted := request.GET.get("withdrawn", "")).isdigit():
        done = coverage_withdrawal_done(operator_id=operator.pk, withdrawal_id=int(wanted))
    return render(request, "fleet/coverage.html", _context(request, operator, withdrawn=done))


@require_POST
@login_required
def unit_withdraw_form(request: HttpRequest, unit_id: int) -> HttpResponse:
    operator = _operator(request)
    unit = coverage_unit(operator_id=operator.pk, unit_id=unit_id)
    if unit is None:
        raise Http404("No such unit")
    try:
        withdrawal = unit_withdraw(
            actor=cast(User, request.user), unit=unit, override_reason=request.POST.get("override_reason", "")
        )
    except AccessDenied as error:
        raise PermissionDenied(error.message) from None
    except DomainError as error:
        context = _context(request, operator, error=error.message, error_unit=unit)
        return render(request, "fleet/coverage.html", context, status=error.status_code)
    if withdrawal.outcome == WithdrawalOutcome.REFUSED:
        refusal = withdrawal_refusal(withdrawal)
        context = _context(
            request,
            operator,
            refused=withdrawal,
            refusal_message=refusal.message,
            plan_url=_plan_url(withdrawal.whatif_plan_id),
            error_unit=unit,
        )
        return render(request, "fleet/coverage.html", context, status=409)
    return redirect(f"{reverse('fleet-coverage')}?withdrawn={withdrawal.pk}")


@require_POST
@login_required
def region_exit_form(request: HttpRequest, region_code: str) -> HttpResponse:
    operator = _operator(request)
    try:
        record = region_service_end(
            actor=cast(User, request.user),
            operator=operator,
            region_code=region_code,
            override_reason=request.POST.get("override_reason", ""),
        )
    except AccessDenied as error:
        raise PermissionDenied(error.message) from None
    except DomainError as error:
        context = _context(request, operator, region_refusal=error.message)
        return render(request, "fleet/coverage.html", context, status=error.status_code)
    if record.outcome == WithdrawalOutcome.REFUSED:
        context = _context(
            request, operator, region_refused=record, region_refusal=region_exit_refusal(record).message
        )
        return render(request, "fleet/coverage.html", context, status=409)
    return render(request, "fleet/coverage.html", _context(request, operator, region_done=record))


__all__ = ["coverage_page", "region_exit_form", "unit_withdraw_form"]
