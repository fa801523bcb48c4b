from django.urls import path, register_converter

from dashboard import (
    views,
    views_billing,
    views_keys,
    views_members,
    views_models,
    views_operator,
    views_provider_keys,
    views_requests,
    views_sessions,
)

register_converter(views_sessions.SessionIdConverter, "session_id")

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("o/<slug:org>/", views.overview, name="overview"),
    # accounts: organisations, members, invitations, API keys
    path("organisations/new/", views.organisation_new, name="organisation_new"),
    path("invitations/<str:token>/", views_members.invitation_detail, name="invitation"),
    path("o/<slug:org>/members/", views_members.member_list, name="members"),
    path("o/<slug:org>/members/invite/", views_members.member_invite, name="member_invite"),
    path(
        "o/<slug:org>/members/<int:member_id>/role/",
        views_members.member_change_role,
        name="member_role",
    ),
    path(
        "o/<slug:org>/members/<int:member_id>/remove/",
        views_members.member_remove,
        name="member_remove",
    ),
    path(
        "o/<slug:org>/invitations/<int:invitation_id>/cancel/",
        views_members.invitation_cancel,
        name="invitation_cancel",
    ),
    path("o/<slug:org>/keys/", views_keys.key_list, name="keys"),
    path("o/<slug:org>/keys/new/", views_keys.key_create, name="key_create"),
    path("o/<slug:org>/keys/<int:key_id>/revoke/", views_keys.key_revoke, name="key_revoke"),
    # gateway: the request log
    path("o/<slug:org>/requests/", views_requests.request_list, name="requests"),
    path("o/<slug:org>/requests/export.csv", views_requests.request_export, name="request_export"),
    path(
        "o/<slug:org>/requests/<str:request_id>/",
        views_requests.request_detail,
        name="request_detail",
    ),
    # gateway: sessions, models, the operators' overview
    path("o/<slug:org>/sessions/", views_sessions.session_list, name="sessions"),
    path(
        "o/<slug:org>/sessions/<session_id:session_id>/",
        views_sessions.session_detail,
        name="session_detail",
    ),
    path("o/<slug:org>/models/", views_models.model_list, name="models"),
    path("operator/", views_operator.operator_overview, name="operator"),
    path("operator/requests/", views_operator.operator_requests, name="operator_requests"),
    path(
        "operator/requests/<str:request_id>/",
        views_operator.operator_request_detail,
        name="operator_request_detail",
    ),
    path("operator/sessions/", views_operator.operator_sessions, name="operator_sessions"),
    path(
        "operator/sessions/<slug:organisation>/<session_id:session_id>/",
        views_operator.operator_session_detail,
        name="operator_session_detail",
    ),
    # billing: balance, ledger, top-ups; BYOK provider keys
    path("o/<slug:org>/billing/", views_billing.billing, name="billing"),
    path("o/<slug:org>/billing/topup/", views_billing.billing_topup, name="billing_topup"),
    path(
        "o/<slug:org>/billing/topup/return/",
        views_billing.billing_topup_return,
        name="billing_topup_return",
    ),
    path(
        "o/<slug:org>/billing/topups/<uuid:topup>/",
        views_billing.billing_topup_status,
        name="billing_topup_status",
    ),
    path("o/<slug:org>/provider-keys/", views_provider_keys.provider_keys, name="provider_keys"),
    path(
        "o/<slug:org>/provider-keys/<slug:provider>/",
        views_provider_keys.provider_key_save_view,
        name="provider_key_save",
    ),
    path(
        "o/<slug:org>/provider-keys/<slug:provider>/mode/",
        views_provider_keys.provider_key_mode_view,
        name="provider_key_mode",
    ),
    path(
        "o/<slug:org>/provider-keys/<slug:provider>/delete/",
        views_provider_keys.provider_key_delete_view,
        name="provider_key_delete",
    ),
]
