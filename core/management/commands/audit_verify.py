import time

from django.core.management.base import BaseCommand, CommandError

from core.services import audit_verify


class Command(BaseCommand):
    help = "Walk the audit hash chain; print 'OK N entries' or name the first broken entry (exit 1)."

    def handle(self, *args, **options):
        started = time.perf_counter()
        result = audit_verify()
        elapsed = time.perf_counter() - started
        if not result.ok:
            raise CommandError(
                f"BROKEN at entry {result.broken_id}: {result.reason} "
                f"({result.checked} entries verified before it)",
                returncode=1,
            )
        rate = result.checked / elapsed if elapsed > 0 else 0
        self.stdout.write(f"OK {result.checked} entries ({elapsed:.2f} s, {rate:,.0f} entries/s)")
