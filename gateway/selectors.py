"""Reads for the gateway: request log queries scoped to an organisation."""

from __future__ import annotations

from django.db.models import QuerySet

from gateway.models import RequestLog


def request_logs_for(*, organisation_ids: list[int]) -> QuerySet[RequestLog]:
    return RequestLog.objects.filter(organisation_id__in=organisation_ids).select_related("api_key")


def request_log_get(*, request_id: str, organisation_ids: list[int]) -> RequestLog | None:
    return request_logs_for(organisation_ids=organisation_ids).filter(request_id=request_id).first()
