"""A URLconf with an admin site holding only ProviderKeyAdmin, so its pages can be
tested whether or not gateway/admin.py has imported it into the main admin yet."""

from django.contrib.admin import AdminSite
from django.urls import path

from gateway.admin_byok import ProviderKeyAdmin
from gateway.models import ProviderKey

site = AdminSite(name="byok_admin_test")
site.register(ProviderKey, ProviderKeyAdmin)

urlpatterns = [path("admin/", site.urls)]
