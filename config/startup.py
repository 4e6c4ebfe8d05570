"""Refuse to start on a bad configuration with one clear line, not a traceback.

Every entry point that loads the settings (``manage.py``, hence ``serve``, ``orthanc``, ``demo``;
the ASGI application daphne imports) calls ``settings_or_exit()`` first: a value the settings
refuse (``DEBUG=maybe``, a malformed URL, a missing production secret) ends the process with
exit code 2 and ``Caravan cannot start: <the reason, naming the variable>`` on stderr.
"""

from __future__ import annotations

import sys

EXIT_CONFIG = 2


def settings_or_exit() -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018  (loading the settings is the check)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Caravan cannot start: {exc}\n")
        raise SystemExit(EXIT_CONFIG) from None
