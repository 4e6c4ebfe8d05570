"""Export a range of the audit log as ATNA XML (one AuditMessage per event) or RFC 5424 lines."""

from __future__ import annotations

import socket
from datetime import date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.dateparse import parse_date, parse_datetime

from core.selectors_audit import audit_search
from core.services.audit_export import atna_document, syslog_lines
from core.services.audit_review import audit_review_record


def _when(value: str | None, name: str) -> date | datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value) if "T" in value or " " in value else parse_date(value)
    if parsed is None:
        raise CommandError(f"--{name} {value!r}: use YYYY-MM-DD or an ISO 8601 date-time")
    return parsed


class Command(BaseCommand):
    help = (
        "Export audit entries from --start to --end (dates inclusive; date-times: end exclusive) as "
        "DICOM PS3.15 / IHE ATNA XML or RFC 5424 syslog lines (docs/audit.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--start", help="YYYY-MM-DD or ISO date-time (default: the first entry)")
        parser.add_argument("--end", help="YYYY-MM-DD or ISO date-time (default: now)")
        parser.add_argument("--format", choices=("atna", "syslog"), default="atna")
        parser.add_argument("--output", help="File to write (default: standard output)")
        parser.add_argument("--hostname", default=socket.gethostname(), help="Syslog HOSTNAME field")

    def handle(self, *args, **options):
        start, end = _when(options["start"], "start"), _when(options["end"], "end")
        if start and end and type(start) is type(end) and start > end:
            raise CommandError("--start is after --end")
        filters: dict[str, Any] = {"start": start, "end": end}
        fmt = options["format"]
        with transaction.atomic():
            audit_review_record(
                actor=None, action="audit.export", filters=filters, extra={"format": fmt, "via": "command"}
            )
        entries = audit_search(**filters).order_by("id").iterator(chunk_size=2000)
        if fmt == "atna":
            chunks = atna_document(entries)
        else:
            chunks = (line + "\n" for line in syslog_lines(entries, hostname=options["hostname"]))
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as stream:
                stream.writelines(chunks)
        else:
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
