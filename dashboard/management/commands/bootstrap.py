"""python manage.py bootstrap: what `make run` needs after migrating, idempotently.

Loads the demo and default catalogs, creates the operator superuser (from
TOLLGATE_ADMIN_EMAIL / TOLLGATE_ADMIN_PASSWORD, or generated and printed once), an
operator organisation with a little demo credit, and on first run a demo API key
printed once.
"""

import os
import secrets
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Group, Membership, Organisation, Role, User
from accounts.services import api_key_create
from billing.models import EntryKind
from billing.money import usd_to_nano
from billing.services import ledger_post
from gateway.services import catalog_file_read, catalog_load

DEMO_BODY = '{"model":"demo-gpt","messages":[{"role":"user","content":"hi"}]}'
CATALOGS = Path(settings.BASE_DIR) / "gateway" / "catalog_data"


class Command(BaseCommand):
    help = "Load catalogs and create the operator account (idempotent)."

    def handle(self, *args, **options):
        for name in ("default.yaml", "demo.yaml"):
            changes = catalog_load(data=catalog_file_read(CATALOGS / name))
            summary = f"{len(changes.lines)} changes" if changes.changed else "up to date"
            self.stdout.write(f"catalog {name}: {summary}")
        with transaction.atomic():
            self._operator()

    def _operator(self) -> None:
        email = os.environ.get("TOLLGATE_ADMIN_EMAIL", "admin@example.com")
        password = os.environ.get("TOLLGATE_ADMIN_PASSWORD", "")
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            generated = not password
            password = password or secrets.token_urlsafe(12)
            user = User.objects.create_superuser(email=email, password=password)
            shown = f"{password}   (generated: shown only now)" if generated else "(as set)"
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nOperator account created\n  e-mail:   {email}\n  password: {shown}\n"
                )
            )
        elif password and not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(f"operator {email}: password updated from TOLLGATE_ADMIN_PASSWORD")
        EmailAddress.objects.get_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        groups = list(Group.objects.filter(slug__in=["default", "pro"]))
        org, created = Organisation.objects.get_or_create(
            slug="operator", defaults={"name": "Operator", "default_group": groups[0]}
        )
        org.allowed_groups.add(*groups)
        Membership.objects.get_or_create(user=user, organisation=org, defaults={"role": Role.OWNER})
        ledger_post(
            organisation=org,
            kind=EntryKind.ADJUSTMENT,
            amount_nano=usd_to_nano(10),
            idempotency_key=f"bootstrap:demo-credit:{org.pk}",
            memo="Demo credit",
        )
        if created:
            key = api_key_create(organisation=org, name="demo", created_by=user)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo API key (shown once): {key.secret}\n"
                    f"  curl {settings.SITE_URL}/v1/chat/completions -H 'Authorization: Bearer "
                    f"{key.secret}' -H 'content-type: application/json' "
                    f"-d '{DEMO_BODY}'\n"
                )
            )
