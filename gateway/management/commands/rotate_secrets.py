"""manage.py rotate_secrets: re-encrypt stored provider keys with the newest key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.encryption import SecretDecryptionError, secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored provider key (BYOK and managed) with the first key in "
        "TOLLGATE_ENCRYPTION_KEYS. Run after adding a new key first in the list; then "
        "the old keys can be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from-derived-key",
            action="store_true",
            help="Also read secrets saved before TOLLGATE_ENCRYPTION_KEYS was set "
            "(encrypted with the key derived from SECRET_KEY).",
        )

    def handle(self, *args: object, **options: Any) -> None:
        try:
            count = secrets_rotate(from_derived_key=options["from_derived_key"])
        except SecretDecryptionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secret(s)."))
