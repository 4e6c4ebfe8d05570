"""Fleet models: the register (units, crew, licences, QC, visits), telemetry, service requests."""

from fleet.models.planning import *  # noqa: F403
from fleet.models.register import *  # noqa: F403
from fleet.models.surge import *  # noqa: F403
from fleet.models.telemetry import *  # noqa: F403
