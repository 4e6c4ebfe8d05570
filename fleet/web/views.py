"""The dispatcher's pages: the live fleet map and a unit's day (docs/fleet-map.md)."""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from fleet.selectors_map import (
    map_operator_for_user,
    map_snapshot,
    unit_day,
    unit_for_day_view,
)

OUTLINE = "fleet/hubei.geojson"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _data_url() -> str:
    try:
        return reverse("fleet-map-data")
    except NoReverseMatch:  # fleet.api.map_urls not included: the page still works, without refresh
        return ""


@require_GET
@login_required
def fleet_map(request: HttpRequest) -> HttpResponse:
    operator = map_operator_for_user(request.user)
    if operator is None:
        raise PermissionDenied("The fleet map is for the operator's dispatchers and administrators.")
    snapshot = map_snapshot(operator=operator)
    config = {
        # Empty: no tiles at all (offline), the region outline and the markers on a plain background.
        "tile_url": getattr(settings, "MAP_TILE_URL", "") or "",
        "tile_attribution": getattr(settings, "MAP_TILE_ATTRIBUTION", "") or "",
        "outline_url": static(OUTLINE),
        "data_url": _data_url(),
        "ws_path": "/ws/fleet/map/",
    }
    return render(request, "fleet/map.html", {"snapshot": snapshot, "map_config": config})


@require_GET
@login_required
def unit_day_view(request: HttpRequest, unit_id: int, day: str) -> HttpResponse:
    operator = map_operator_for_user(request.user)
    # One answer for "not yours", "no such unit" and "not a dispatcher": nothing is revealed.
    if operator is None:
        raise Http404("No such unit")
    try:
        if not _DAY.fullmatch(day):
            raise ValueError(day)
        date = datetime.date.fromisoformat(day)
    except ValueError:
        raise Http404("Not a date (YYYY-MM-DD)")
    unit = unit_for_day_view(operator_id=operator.pk, unit_id=unit_id)
    if unit is None:
        raise Http404("No such unit")
    context = {
        "unit": unit,
        "date": date,
        "day": unit_day(unit=unit, date=date),
        "previous": (date - datetime.timedelta(days=1)).isoformat(),
        "next": (date + datetime.timedelta(days=1)).isoformat(),
        "today": timezone.localdate().isoformat(),
    }
    return render(request, "fleet/unit_day.html", context)
