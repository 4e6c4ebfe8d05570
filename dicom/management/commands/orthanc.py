"""``manage.py orthanc``: run the platform's Orthanc on loopback from Django settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from dicom.orthanc import launcher


def orthanc_config_from_settings(
    *,
    run_dir: str | Path | None = None,
    http_port: int | None = None,
    dicom_port: int | None = None,
    stable_age: int | None = None,
) -> launcher.OrthancConfig:
    """The launcher configuration that matches ORTHANC_* and PLATFORM_URL settings."""
    try:
        return launcher.OrthancConfig(
            run_dir=Path(run_dir or settings.ORTHANC_RUN_DIR),
            username=settings.ORTHANC_USERNAME,
            password=settings.ORTHANC_PASSWORD,
            plugin_secret=settings.ORTHANC_PLUGIN_SECRET,
            nudge_url=settings.PLATFORM_URL.rstrip("/") + reverse("dicom-orthanc-nudge"),
            http_port=http_port or urlsplit(settings.ORTHANC_URL).port or 8042,
            dicom_port=dicom_port or settings.ORTHANC_DICOM_PORT,
            aet=settings.ORTHANC_AET,
            modalities=launcher.parse_modalities(settings.ORTHANC_ALLOWED_MODALITIES),
            stable_age=stable_age or settings.ORTHANC_STABLE_AGE,
        )
    except launcher.LauncherError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = (
        "Render Orthanc's configuration from settings and start Orthanc in the background "
        "(default), in the foreground, or stop it. See docs/orthanc.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--http-port", type=int, help="HTTP port (default: the port of ORTHANC_URL)")
        parser.add_argument("--dicom-port", type=int, help="DICOM port (default: ORTHANC_DICOM_PORT)")
        parser.add_argument(
            "--run-dir", help="config, storage, index, log and PID (default: ORTHANC_RUN_DIR)"
        )
        parser.add_argument(
            "--stable-age", type=int, help="seconds before a study is stable (ORTHANC_STABLE_AGE)"
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for start or stop")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--foreground", action="store_true", help="replace this process with Orthanc")
        mode.add_argument(
            "--stop", action="store_true", help="stop the Orthanc running from the run directory"
        )
        mode.add_argument("--render-only", action="store_true", help="write the configuration and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["stop"]:
            run_dir = Path(options["run_dir"] or settings.ORTHANC_RUN_DIR)
            stopped = launcher.stop(run_dir, timeout=options["timeout"])
            self.stdout.write("Orthanc stopped." if stopped else f"No Orthanc running from {run_dir}.")
            return
        config = orthanc_config_from_settings(
            run_dir=options["run_dir"],
            http_port=options["http_port"],
            dicom_port=options["dicom_port"],
            stable_age=options["stable_age"],
        )
        if not config.modalities:
            self.stderr.write(
                "No DICOM peer is whitelisted (ORTHANC_ALLOWED_MODALITIES): "
                "every association will be refused."
            )
        try:
            if options["render_only"]:
                self.stdout.write(str(launcher.render(config)))
            elif options["foreground"]:
                launcher.run_foreground(config)
            else:
                pid = launcher.start(config, timeout=options["timeout"])
                self.stdout.write(
                    f"Orthanc started (pid {pid}): {config.url}, "
                    f"DICOM {config.aet} on port {config.dicom_port}; log {config.log_path}"
                )
        except launcher.LauncherError as exc:
            raise CommandError(str(exc)) from exc
