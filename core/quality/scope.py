"""What one operator's dashboards may show: its units, the hospitals it serves, the pools reading
its studies (``operator_id=None``: the whole platform, for superusers).

The filter selects offer exactly these, and a filter id outside them is refused by the view (400);
each dashboard also restricts its own rows to ``DashboardFilters.operator_id``, so a filter id that
got past the view still finds only the operator's own data.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from core.choices import OrganisationKind
from core.models import Organisation
from fleet.models import ServiceContract, Unit, Visit
from telerad.models import ReadingPool, ReadingTask


def units_in_scope(operator_id: int | None) -> QuerySet[Unit]:
    units = Unit.objects.all()
    return units if operator_id is None else units.filter(operator_id=operator_id)


def hospitals_in_scope(operator_id: int | None) -> QuerySet[Organisation]:
    """Hospitals the operator has a service contract with (any, active or not) or has visited."""
    hospitals = Organisation.objects.filter(kind=OrganisationKind.HOSPITAL)
    if operator_id is None:
        return hospitals
    contracted = ServiceContract.objects.filter(operator_id=operator_id).values("hospital_id")
    visited = Visit.objects.filter(unit__operator_id=operator_id).values("hospital_id")
    return hospitals.filter(Q(pk__in=contracted) | Q(pk__in=visited))


def pools_in_scope(operator_id: int | None) -> QuerySet[ReadingPool]:
    """Pools that were routed at least one study the operator's units acquired."""
    pools = ReadingPool.objects.all()
    if operator_id is None:
        return pools
    routed = ReadingTask.objects.filter(study__unit__operator_id=operator_id).values("pool_id")
    return pools.filter(pk__in=routed)
