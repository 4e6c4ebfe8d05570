"""Fleet writes: the register (units, crew, licences, QC, state machine) and telemetry."""

from fleet.services.compliance import crew_credential_add, licence_add, maintenance_window_add
from fleet.services.equipment_qc import equipment_qc_record
from fleet.services.register import crew_member_add, unit_register
from fleet.services.units import unit_transition
from fleet.services.visits import visit_crew_assign, visit_start

__all__ = [
    "crew_credential_add",
    "crew_member_add",
    "equipment_qc_record",
    "licence_add",
    "maintenance_window_add",
    "unit_register",
    "unit_transition",
    "visit_crew_assign",
    "visit_start",
]
