"""`manage.py apikey create|revoke`: API keys from the command line (operators, scripts).

`create` prints the new secret once on stdout and nothing else there, so a script can
capture it (`KEY=$(manage.py apikey create --org acme --name ci)`); messages go to
stderr. The secret is not logged.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiKey, Group, Organisation
from accounts.services import ApiKeyError, api_key_create, api_key_revoke


class Command(BaseCommand):
    help = "Create or revoke API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print its secret once.")
        create.add_argument("--org", required=True, help="organisation slug")
        create.add_argument("--name", required=True, help="a name for the key")
        create.add_argument("--group", help="key group slug (default: the organisation's)")
        revoke = sub.add_parser("revoke", help="Revoke a key by its prefix.")
        revoke.add_argument("prefix", help="the key's prefix, e.g. sk-tg-AbCdEfGh")

    def handle(self, *args: object, **options: object) -> None:
        if options["action"] == "create":
            self._create(str(options["org"]), str(options["name"]), options.get("group"))
        else:
            self._revoke(str(options["prefix"]))

    def _create(self, org_slug: str, name: str, group_slug: object) -> None:
        try:
            organisation = Organisation.objects.get(slug=org_slug)
        except Organisation.DoesNotExist:
            raise CommandError(f"No organisation with slug '{org_slug}'.") from None
        group = None
        if group_slug:
            try:
                group = Group.objects.get(slug=group_slug)
            except Group.DoesNotExist:
                raise CommandError(f"No key group with slug '{group_slug}'.") from None
        try:
            created = api_key_create(organisation=organisation, name=name, group=group)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        key = created.api_key
        self.stderr.write(
            f"Created key '{key.name}' ({key.masked}) in {organisation.slug}, group "
            f"{key.group.slug}. The secret below is shown only once."
        )
        self.stdout.write(created.secret)

    def _revoke(self, prefix: str) -> None:
        try:
            api_key = ApiKey.objects.get(prefix=prefix)
        except ApiKey.DoesNotExist:
            raise CommandError(f"No key with prefix '{prefix}'.") from None
        if api_key.revoked_at is not None:
            self.stderr.write(f"Key {api_key.masked} was already revoked.")
            return
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked {api_key.masked} ({api_key.name}).")
