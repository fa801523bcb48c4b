"""python manage.py catalog load FILE [--dry-run]"""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from gateway.services import CatalogError, catalog_file_read, catalog_load


class _DryRun(Exception):
    pass


class Command(BaseCommand):
    help = "Load a catalog file (YAML or JSON): providers, models, prices, deployments."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        load = sub.add_parser("load", help="create or update what the file lists")
        load.add_argument("file")
        load.add_argument("--dry-run", action="store_true", help="report, change nothing")

    def handle(
        self, *args: object, action: str, file: str, dry_run: bool = False, **options: object
    ) -> None:
        try:
            data = catalog_file_read(file)
            with transaction.atomic():
                changes = catalog_load(data=data)
                if dry_run:
                    raise _DryRun()
        except _DryRun:
            pass
        except (CatalogError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        for line in changes.lines:
            self.stdout.write(f"  {line}")
        verb = "would change" if dry_run else "changed"
        if changes.changed:
            self.stdout.write(self.style.SUCCESS(f"{file}: {verb} {len(changes.lines)} things"))
        else:
            self.stdout.write(f"{file}: already up to date")
