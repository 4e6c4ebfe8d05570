import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.services.audit import audit_checkpoints
from core.services.audit_check import audit_check_run


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain (keyed hashes, and against the signed checkpoints in "
        "AUDIT_CHECKPOINT_FILE); print 'OK N entries' and append a checkpoint of the head, or name the "
        "first broken entry or bad checkpoint (exit 1). Each run is stored as an AuditCheck "
        "(shown on /workspace/quality/audit/)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--alert",
            action="store_true",
            help="When broken, alert as the nightly task does (CRITICAL log, mail_admins, notifications).",
        )

    def handle(self, *args, **options):
        started = time.perf_counter()
        check = audit_check_run(alert=options["alert"])
        elapsed = time.perf_counter() - started
        if not check.ok:
            where = (
                f"at entry {check.first_broken_id}" if check.first_broken_id is not None else "(checkpoints)"
            )
            raise CommandError(
                f"BROKEN {where}: {check.message} ({check.entries} entries verified before it)",
                returncode=1,
            )
        rate = check.entries / elapsed if elapsed > 0 else 0
        self.stdout.write(f"OK {check.entries} entries ({elapsed:.2f} s, {rate:,.0f} entries/s)")
        checkpoints, _ = audit_checkpoints()
        if checkpoints:
            self.stdout.write(f"checkpoint in {settings.AUDIT_CHECKPOINT_FILE}: {checkpoints[-1].line}")
