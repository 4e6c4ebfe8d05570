"""Celery tasks of the tele-reading domain (one module per sub-domain, imported here so that
Celery's autodiscovery of ``telerad.tasks`` finds them all)."""

from telerad.tasks.claims import *  # noqa: F403
from telerad.tasks.critical import *  # noqa: F403
