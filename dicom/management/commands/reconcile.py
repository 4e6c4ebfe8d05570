import time

from django.core.management.base import BaseCommand, CommandParser

from dicom.orthanc_client import OrthancError
from dicom.services.reconcile import reconcile_changes


class Command(BaseCommand):
    help = (
        "Walk Orthanc's /changes from the stored cursor and ingest every stable study not yet "
        "ingested. With --loop N, repeat every N seconds (the embedded stand-in for Celery beat)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", type=float, metavar="SECONDS", help="repeat every SECONDS")

    def handle(self, *args, loop=None, **options):
        while True:
            try:
                result = reconcile_changes()
            except OrthancError as exc:
                self.stderr.write(f"reconcile: Orthanc unreachable ({exc}); retrying")
            else:
                if result.ingested or result.recovered or not loop:
                    self.stdout.write(
                        f"reconcile: changes {result.start_seq}->{result.end_seq}, "
                        f"{result.stable_seen} stable studies seen, {result.ingested} ingested or updated, "
                        f"{result.recovered} quiet for StableAge without StableStudy ingested or updated"
                        + (" (another reconciler holds the lock)" if result.skipped_locked else "")
                    )
            if not loop:
                return
            time.sleep(loop)
