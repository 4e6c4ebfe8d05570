"""Fleet writes: the register (units, crew, licences, QC, state machine) and telemetry."""

from fleet.services.register import crew_member_add, unit_register

__all__ = ["crew_member_add", "unit_register"]
