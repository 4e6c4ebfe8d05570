from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.exceptions import DomainError
from fleet.models import DeviceToken, Unit
from fleet.services.telemetry import device_token_issue, device_token_revoke


class Command(BaseCommand):
    help = (
        "Issue a telemetry device token for a unit (the key is printed once and never stored) "
        "or revoke one: device_token issue <unit name> [--label L] | device_token revoke <token id>"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        issue = sub.add_parser("issue", help="issue a token for the unit named UNIT")
        issue.add_argument("unit", help="unit name")
        issue.add_argument("--label", default="", help="e.g. the device's serial number")
        revoke = sub.add_parser("revoke", help="revoke the token with id TOKEN")
        revoke.add_argument("token", type=int)

    def handle(self, *args, action: str, **options):
        try:
            if action == "issue":
                unit = Unit.objects.filter(name=options["unit"]).first()
                if unit is None:
                    raise CommandError(f"No unit named {options['unit']!r}")
                token, raw_key = device_token_issue(unit=unit, actor=None, label=options["label"])
                self.stdout.write(f"Token {token.pk} for {unit.name} (unit id {unit.pk}); key, shown once:")
                self.stdout.write(raw_key)
            else:
                found = DeviceToken.objects.filter(pk=options["token"]).first()
                if found is None:
                    raise CommandError(f"No device token {options['token']}")
                device_token_revoke(token=found, actor=None)
                self.stdout.write(f"Revoked device token {found.pk} of unit {found.unit_id}")
        except DomainError as exc:
            raise CommandError(exc.message) from exc
