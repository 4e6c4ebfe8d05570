"""Visit planner core: plain Python, no Django. See docs/planning.md.

`plan_greedy` is the baseline, `plan_ortools` the OR-Tools routing solver, `plan_violations`
checks any result against every hard constraint."""

from fleet.planning.check import plan_violations
from fleet.planning.greedy import plan_greedy
from fleet.planning.model import (
    LockedVisit,
    PlanInput,
    PlannedVisit,
    PlanRequest,
    PlanResult,
    PlanUnit,
    PreviousVisit,
)
from fleet.planning.ortools_solver import plan_ortools
from fleet.planning.travel import GeodesicTravel, MatrixTravel, TravelProvider

__all__ = [
    "GeodesicTravel",
    "LockedVisit",
    "MatrixTravel",
    "PlanInput",
    "PlanRequest",
    "PlanResult",
    "PlanUnit",
    "PlannedVisit",
    "PreviousVisit",
    "TravelProvider",
    "plan_greedy",
    "plan_ortools",
    "plan_violations",
]
