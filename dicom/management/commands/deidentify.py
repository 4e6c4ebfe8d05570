from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import DomainError
from core.models import User
from dicom.models import Study
from dicom.services.deid import study_deidentify


class Command(BaseCommand):
    help = (
        "Make (or return) the de-identified copy of a study for a teaching or research project, "
        "now, in this process, on behalf of a QC officer or administrator. "
        "The API queues the same work for a worker instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", type=int, required=True, metavar="ID", help="the study's id")
        parser.add_argument("--project", required=True, metavar="NAME", help="the project the copy is for")
        parser.add_argument(
            "--as",
            dest="username",
            required=True,
            metavar="USERNAME",
            help="the QC officer or administrator the export is made for (audited as them)",
        )

    def handle(self, *args, study: int, project: str, username: str, **options):
        actor = User.objects.filter(username=username, is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user named {username!r}")
        target = Study.objects.filter(pk=study).first()
        if target is None:
            raise CommandError(f"No study with id {study}")
        try:
            export = study_deidentify(actor=actor, study=target, project=project)
        except DomainError as exc:
            raise CommandError(f"De-identification refused or failed: {exc.message}") from exc
        self.stdout.write(
            f"export {export.pk}: {export.status}, {export.series_count} series, "
            f"{export.instance_count} instances, StudyInstanceUID {export.deid_study_instance_uid}"
        )
