"""Live fleet-map updates: one channel-layer message per fix batch, throttled per unit.

The telemetry ingest calls ``fleet_map_publish(unit_ids=[...])`` after storing a batch; the
dispatchers' map sockets (fleet.consumers.FleetMapConsumer) forward the message as it is.
Protocol and throttle: docs/fleet-map.md.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.utils import timezone

from core.on_commit import group_send_on_commit
from fleet.models import Unit
from fleet.selectors_map import map_group_name, map_unit_row

# At most one update per unit per window: a van reporting every second would otherwise push a
# message per second to every dispatcher's browser, for a marker that moves a few metres.
THROTTLE_S = 2
MESSAGE_TYPE = "fleet.map"  # the consumer's handler: FleetMapConsumer.fleet_map


def _throttle_key(unit_id: int) -> str:
    return f"fleet-map:throttle:{unit_id}"


def _claim_slot(unit_id: int) -> bool:
    """True for the first call per unit in a window (``cache.add`` only sets an absent key, atomically)."""
    return bool(cache.add(_throttle_key(unit_id), 1, timeout=THROTTLE_S))


def fleet_map_publish(*, unit_ids: list[int]) -> list[int]:
    """Queue the units' current positions and status for the map, sent after commit.

    Units published within the last ``THROTTLE_S`` seconds are left out; when none is left,
    nothing is sent. Units of different operators go to their own operator's group (one
    message per operator; a batch from one van's device is one operator). Returns the ids sent.
    """
    wanted = sorted({int(unit_id) for unit_id in unit_ids})
    fresh = [unit_id for unit_id in wanted if _claim_slot(unit_id)]
    if not fresh:
        return []
    now = timezone.now()
    by_operator: dict[int, list[dict[str, Any]]] = {}
    units = Unit.objects.filter(pk__in=fresh).select_related("position").order_by("name")
    for unit in units:
        by_operator.setdefault(unit.operator_id, []).append(map_unit_row(unit, now=now))
    for operator_id, rows in by_operator.items():
        payload = {"kind": "units", "at": now.isoformat(), "units": rows}
        group_send_on_commit(map_group_name(operator_id), {"type": MESSAGE_TYPE, "payload": payload})
    return [row["id"] for rows in by_operator.values() for row in rows]
