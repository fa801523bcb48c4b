from django.contrib import admin
from django.urls import include, path

from config.api import api

admin.site.site_header = "Tollgate operator admin"
admin.site.site_title = "Tollgate admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", api.urls),
    path("billing/", include("billing.urls")),
    path("", include("dashboard.urls")),
]
