"""``manage.py synth``: generate a synthetic study, optionally write it, C-STORE or upload it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from pydicom.dataset import Dataset

from dicom.choices import BodyPart
from dicom.models import Order
from dicom.orthanc import launcher
from dicom.orthanc_client import OrthancError, orthanc_client_from_settings
from dicom.synth import Defect, SendError, StudySpec, iter_study, send_study, spec_from_order, to_bytes


class Command(BaseCommand):
    help = (
        "Generate a synthetic DICOM study (CT/MR/DX, optional dose SR and QC defects); write it "
        "to --out, C-STORE it to Orthanc (--send) or upload it over REST (--rest)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--modality", type=str.upper, choices=["CT", "MR", "DX"], help="default CT")
        parser.add_argument(
            "--body-part", type=str.upper, choices=BodyPart.values, help="BodyPartExamined (default HEAD)"
        )
        parser.add_argument("--series", type=int, default=1, help="image series (default 1)")
        parser.add_argument("--slices", type=int, help="images per series (default CT 40, MR 24, DX 1)")
        parser.add_argument("--rows", type=int, default=256)
        parser.add_argument("--columns", type=int, default=256)
        parser.add_argument("--seed", type=int, default=0, help="pixel noise seed")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--accession",
            help="accession number; if an order has it, the study is that order's (patient, UID)",
        )
        source.add_argument("--order-id", type=int, help="acquire this order (accession, patient, UID)")
        parser.add_argument(
            "--defect",
            action="extend",
            nargs="+",
            default=[],
            choices=[d.value for d in Defect],
            metavar="DEFECT",
            help="inject a QC defect (repeatable): " + ", ".join(d.value for d in Defect),
        )
        parser.add_argument("--dose-sr", action="store_true", help="add an X-Ray Radiation Dose SR (CT)")
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--send", action="store_true", help="C-STORE over one DICOM association")
        target.add_argument("--rest", action="store_true", help="upload through Orthanc's REST API")
        parser.add_argument("--host", help="DICOM host (default: host of ORTHANC_URL)")
        parser.add_argument("--port", type=int, help="DICOM port (default: ORTHANC_DICOM_PORT)")
        parser.add_argument(
            "--calling-aet", help="our AE title (default: first in ORTHANC_ALLOWED_MODALITIES)"
        )
        parser.add_argument("--called-aet", help="Orthanc's AE title (default: ORTHANC_AET)")
        parser.add_argument("--bind-host", default="", help="local address to send from")
        parser.add_argument("--timeout", type=float, default=30.0, help="DICOM timeouts, seconds")
        parser.add_argument("--out", type=Path, help="write Part 10 files under DIR/<StudyUID>/")

    def handle(self, *args: Any, **options: Any) -> None:
        calling_aet = self._calling_aet(options) if options["send"] else options["calling_aet"]
        spec = self._spec(options, station_aet=calling_aet)
        total = spec.series_count * spec.images_per_series + (1 if spec.with_dose_sr else 0)
        self.counted_bytes = 0
        self.study_uid = ""
        self.accession = ""
        self.last_file: bytes | None = None
        self._progress_open = False
        started = time.perf_counter()
        stream = self._tap(iter_study(spec), options["out"], total, started, encode=bool(options["rest"]))
        count, stored, how = 0, 0, "generated"
        if options["send"]:
            host = options["host"] or urlsplit(settings.ORTHANC_URL).hostname or "127.0.0.1"
            port = options["port"] or settings.ORTHANC_DICOM_PORT
            called = options["called_aet"] or settings.ORTHANC_AET
            try:
                result = send_study(
                    stream,
                    host=host,
                    port=port,
                    calling_aet=calling_aet,
                    called_aet=called,
                    timeout=options["timeout"],
                    bind_host=options["bind_host"],
                )
            except SendError as exc:
                self._end_progress()
                raise CommandError(f"{exc} ({exc.result.stored} instance(s) stored before)") from exc
            count, stored, how = len(result.statuses), result.stored, f"sent to {called}@{host}:{port}"
            if not options["out"]:
                self.counted_bytes = result.bytes_sent
            failed = result.failed
        elif options["rest"]:
            client = orthanc_client_from_settings()
            failed = []
            try:
                for ds in stream:
                    client.upload_instance(self.last_file or to_bytes(ds))
                    count += 1
            except OrthancError as exc:
                self._end_progress()
                raise CommandError(f"REST upload failed after {count} instance(s): {exc}") from exc
            stored, how = count, f"uploaded to {settings.ORTHANC_URL}"
        else:
            failed = []
            count = sum(1 for _ in stream)
        seconds = time.perf_counter() - started
        self._end_progress()
        unit = "bytes" if options["out"] or options["send"] or options["rest"] else "bytes of pixel data"
        self.stdout.write(
            f"{spec.actual_modality} {spec.actual_body_part}: {count} instances {how}, "
            f"{self.counted_bytes:,} {unit}, {seconds:.2f} s, {count / max(seconds, 1e-9):.0f} instances/s"
        )
        self.stdout.write(
            f"StudyInstanceUID {self.study_uid}, accession {self.accession or '(none)'}"
            + (f", defects: {', '.join(sorted(spec.defects))}" if spec.defects else "")
            + (f"; written under {options['out'] / self.study_uid}" if options["out"] else "")
        )
        if options["send"] or options["rest"]:
            self.stdout.write(f"stored {stored}/{count}")
        if failed:
            details = ", ".join(f"{s.sop_instance_uid}: {s.error or hex(s.status or 0)}" for s in failed[:5])
            raise CommandError(f"{len(failed)} instance(s) not stored: {details}")

    # --- helpers ---------------------------------------------------------------------------------

    def _calling_aet(self, options: dict[str, Any]) -> str:
        if options["calling_aet"]:
            return str(options["calling_aet"])
        try:
            modalities = launcher.parse_modalities(settings.ORTHANC_ALLOWED_MODALITIES)
        except launcher.LauncherError as exc:
            raise CommandError(f"ORTHANC_ALLOWED_MODALITIES: {exc}") from exc
        if not modalities:
            raise CommandError(
                "no --calling-aet and ORTHANC_ALLOWED_MODALITIES is empty: Orthanc would refuse the "
                "association; pass --calling-aet or whitelist a peer"
            )
        return modalities[0].aet

    def _spec(self, options: dict[str, Any], *, station_aet: str | None) -> StudySpec:
        order = self._order(options)
        fields: dict[str, Any] = {
            "series_count": options["series"],
            "slices_per_series": options["slices"],
            "rows": options["rows"],
            "columns": options["columns"],
            "seed": options["seed"],
            "with_dose_sr": options["dose_sr"],
            "defects": frozenset(Defect(d) for d in options["defect"]),
        }
        try:
            if order is None:
                fields["modality"] = options["modality"] or "CT"
                fields["body_part"] = options["body_part"] or "HEAD"
                fields["accession_number"] = options["accession"]
                if station_aet:
                    fields["station_aet"] = station_aet
                return StudySpec(**fields)
            for key in ("modality", "body_part"):
                if options[key] and options[key] != getattr(order, key):
                    raise CommandError(
                        f"order {order.pk} is booked as {getattr(order, key)}, not {options[key]}: "
                        f"leave --{key.replace('_', '-')} out, or use --defect wrong_{key} to simulate it"
                    )
            self.stdout.write(f"Order {order.pk}: {order}")
            return spec_from_order(order, **fields)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _order(self, options: dict[str, Any]) -> Order | None:
        try:
            if options["order_id"] is not None:
                try:
                    return Order.objects.select_related("unit").get(pk=options["order_id"])
                except Order.DoesNotExist:
                    raise CommandError(f"no order with id {options['order_id']}")
            if options["accession"]:
                if len(options["accession"]) > 16:
                    raise CommandError("--accession is longer than 16 characters (DICOM SH)")
                order = Order.objects.select_related("unit").filter(accession_number=options["accession"])
                found = order.first()
                if found is None:
                    self.stdout.write(f"No order has accession {options['accession']}: standalone study")
                return found
        except DatabaseError as exc:
            if options["order_id"] is not None:
                raise CommandError(f"cannot read orders: {exc}") from exc
            self.stderr.write(f"Cannot look up the accession in orders ({exc}); standalone study")
        return None

    def _tap(
        self, datasets: Iterator[Dataset], out: Path | None, total: int, started: float, *, encode: bool
    ) -> Iterator[Dataset]:
        """Pass instances through, writing files, counting bytes and showing progress."""
        tty = self.stdout.isatty()
        step = max(1, total // 4)
        shown = 0.0
        for done, ds in enumerate(datasets, start=1):
            self.study_uid = str(ds.StudyInstanceUID)
            self.accession = str(ds.get("AccessionNumber", ""))
            if out is not None or encode:
                data = to_bytes(ds)
                self.counted_bytes += len(data)
                self.last_file = data
                if out is not None:
                    path = out / self.study_uid / f"{ds.SeriesNumber:03d}" / f"{ds.InstanceNumber:05d}.dcm"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
            else:
                self.counted_bytes += len(ds.PixelData) if "PixelData" in ds else 0
            yield ds
            now = time.perf_counter()
            if (tty and (now - shown > 0.2 or done == total)) or (
                not tty and (done % step == 0 or done == total)
            ):
                shown = now
                rate = done / max(now - started, 1e-9)
                line = f"{done}/{total} instances, {rate:.0f}/s"
                self.stdout.write(f"\r{line}" if tty else line, ending="" if tty else "\n")
                self.stdout.flush()
                self._progress_open = tty

    def _end_progress(self) -> None:
        if self._progress_open:
            self.stdout.write("")
            self._progress_open = False
