from django.core.management.base import BaseCommand, CommandError

from core.exceptions import DomainError
from core.models import Organisation
from core.services import user_create


class Command(BaseCommand):
    help = "Create a user in an organisation with one or more roles."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--organisation", required=True, help="organisation name")
        parser.add_argument("--role", action="append", required=True, dest="roles", help="repeatable")
        parser.add_argument("--password", help="omit to create a user who cannot log in yet")
        parser.add_argument("--email", default="")

    def handle(self, *args, username, organisation, roles, password, email, **options):
        org = Organisation.objects.filter(name=organisation).first()
        if org is None:
            raise CommandError(f"No organisation named {organisation!r}")
        try:
            user = user_create(
                actor=None,
                username=username,
                password=password,
                organisation=org,
                roles=roles,
                email=email,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created {user.username} ({', '.join(sorted(user.roles))}) in {org.name}")
