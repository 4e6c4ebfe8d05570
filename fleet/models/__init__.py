"""Fleet models: the register (units, crew, licences, equipment QC, visits) and telemetry."""

from fleet.models.register import *  # noqa: F403
from fleet.models.telemetry import *  # noqa: F403
