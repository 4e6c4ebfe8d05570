"""Entry point of the Orthanc image: dicom/orthanc/launcher.py, with the index in PostgreSQL.

The launcher renders the configuration that development, the tests and production share, with
Orthanc's default SQLite index. In the compose deployment the index lives in PostgreSQL
instead, so that several Orthanc instances can share one index and PostgreSQL stays the single
source of truth; this script adds that through the launcher's ``extra`` hook.

    python3 orthanc_entrypoint.py run      # exec Orthanc as this process (container PID 1)
    python3 orthanc_entrypoint.py render   # write the configuration and print its path

Standard library only, like the launcher: the image has no virtualenv. Variables, besides the
launcher's own (ORTHANC_*, PLATFORM_URL, CARAVAN_ENV):

    ORTHANC_POSTGRESQL_HOST         unset: keep the launcher's SQLite index
    ORTHANC_POSTGRESQL_PORT         5432
    ORTHANC_POSTGRESQL_DATABASE     orthanc
    ORTHANC_POSTGRESQL_USERNAME     orthanc
    ORTHANC_POSTGRESQL_PASSWORD     required with a host; or ORTHANC_POSTGRESQL_PASSWORD_FILE
    ORTHANC_POSTGRESQL_CONNECTIONS  5 (index connections per Orthanc)
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

# The image mirrors the repository layout under /opt/caravan (dicom/orthanc/ next to this file),
# so the launcher is imported as the same package it is in development.
IMAGE_ROOT = Path(__file__).resolve().parent
INDEX_PLUGIN_NAME = "libOrthancPostgreSQLIndex.so"


def load_launcher() -> ModuleType:
    if str(IMAGE_ROOT) not in sys.path:
        sys.path.insert(0, str(IMAGE_ROOT))
    return importlib.import_module("dicom.orthanc.launcher")


# The launcher's readers, so NAME_FILE secrets and range errors behave the same in both.
_launcher = load_launcher()
_value = _launcher.env_value
_int = _launcher.env_int


def postgresql_section(environ: Mapping[str, str]) -> dict[str, object] | None:
    """Orthanc's "PostgreSQL" section (orthanc-postgresql 4.0), or None to keep SQLite."""
    host = _value(environ, "ORTHANC_POSTGRESQL_HOST")
    if host is None:
        return None
    password = _value(environ, "ORTHANC_POSTGRESQL_PASSWORD")
    if not password:
        raise _launcher.LauncherError(
            "ORTHANC_POSTGRESQL_PASSWORD (or ..._FILE) must be set with ORTHANC_POSTGRESQL_HOST"
        )
    return {
        "EnableIndex": True,
        # Files stay on the storage volume: DICOM in PostgreSQL would bloat the server the
        # platform also depends on, and its backups.
        "EnableStorage": False,
        "Host": host,
        "Port": _int(environ, "ORTHANC_POSTGRESQL_PORT", 5432, 1, 65535),
        "Database": _value(environ, "ORTHANC_POSTGRESQL_DATABASE") or "orthanc",
        "Username": _value(environ, "ORTHANC_POSTGRESQL_USERNAME") or "orthanc",
        "Password": password,
        # Without this the first Orthanc locks the index and every other instance refuses to
        # start; plugin 4.0 retries conflicting transactions, so several writers are safe.
        "Lock": False,
        "IndexConnectionsCount": _int(environ, "ORTHANC_POSTGRESQL_CONNECTIONS", 5, 1, 100),
        # PostgreSQL may still be starting (or restarting) when Orthanc does.
        "MaximumConnectionRetries": 30,
        "ConnectionRetryInterval": 2,
    }


def build_config(launcher: ModuleType, environ: Mapping[str, str]):
    config = launcher.config_from_env(environ)
    section = postgresql_section(environ)
    if section is None:
        return config
    document = config.to_orthanc()
    plugins_dir = os.path.dirname(config.python_plugin)
    index_plugin = os.path.join(plugins_dir, INDEX_PLUGIN_NAME)
    extra = dict(config.extra)
    extra["PostgreSQL"] = section
    extra["Plugins"] = [*document["Plugins"], index_plugin]
    return dataclasses.replace(config, extra=extra)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in (["run"], ["render"]):
        print("usage: orthanc_entrypoint.py run|render", file=sys.stderr)
        return 2
    launcher = load_launcher()
    try:
        config = build_config(launcher, os.environ)
        for plugin in config.extra.get("Plugins", ()):
            if not os.path.exists(plugin) and args == ["run"]:
                raise launcher.LauncherError(
                    f"{plugin} is missing (Debian: apt-get install orthanc-postgresql)"
                )
        if args == ["render"]:
            print(launcher.render(config))
        else:
            launcher.run_foreground(config)
    except (launcher.LauncherError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
