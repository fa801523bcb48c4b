"""Console forms: parse and validate user input; the services decide what is allowed."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Group, Organisation, Role
from billing.money import usd_to_nano


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="So you can tell keys apart, e.g. 'ci'.")
    group = forms.ModelChoiceField(queryset=Group.objects.none(), empty_label=None)
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. The key stops working at the end of this day (UTC).",
    )
    spend_limit_usd = forms.DecimalField(
        required=False,
        label="Spend limit (USD)",
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text="Optional. Total the key may spend over its lifetime.",
    )
    daily_limit_usd = forms.DecimalField(
        required=False,
        label="Daily limit (USD)",
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text="Optional. Per UTC day.",
    )
    monthly_limit_usd = forms.DecimalField(
        required=False,
        label="Monthly limit (USD)",
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text="Optional. Per calendar month (UTC).",
    )

    def limit_nano(self, name: str) -> int | None:
        value = self.cleaned_data.get(name)
        return usd_to_nano(value) if value is not None else None

    def __init__(self, *args: Any, organisation: Organisation, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["group"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = organisation.allowed_groups.order_by("slug")
        field.initial = organisation.default_group_id

    def clean_expires_on(self) -> date | None:
        value = self.cleaned_data.get("expires_on")
        if value is not None and value < timezone.now().date():
            raise ValidationError("Choose today or a later date.")
        return value

    @property
    def expires_at(self) -> datetime | None:
        """End of the chosen day in UTC: 'expires on the 31st' means usable all that day."""
        value = self.cleaned_data.get("expires_on")
        if value is None:
            return None
        return datetime.combine(value + timedelta(days=1), time.min, tzinfo=UTC)


class InvitationForm(forms.Form):
    email = forms.EmailField(label="E-mail address")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class MembershipRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class OrganisationCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=50,
        required=False,
        help_text="Optional: the short name in your console URLs. Derived from the name if empty.",
    )

    def clean_slug(self) -> str:
        slug = slugify(self.cleaned_data.get("slug") or "")
        if slug and Organisation.objects.filter(slug=slug).exists():
            raise ValidationError("This slug is taken; choose another.")
        return slug
