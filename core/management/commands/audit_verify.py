import time

from django.core.management.base import BaseCommand, CommandError

from core.services.audit_check import audit_check_run


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain; print 'OK N entries' or name the first broken entry (exit 1). "
        "Each run is stored as an AuditCheck (shown on /workspace/quality/audit/)."
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
            raise CommandError(
                f"BROKEN at entry {check.first_broken_id}: {check.message} "
                f"({check.entries} entries verified before it)",
                returncode=1,
            )
        rate = check.entries / elapsed if elapsed > 0 else 0
        self.stdout.write(f"OK {check.entries} entries ({elapsed:.2f} s, {rate:,.0f} entries/s)")
