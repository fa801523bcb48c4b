"""End to end in Chromium: sign up, verify the e-mail, create an API key, see its secret
once (and copy it), reload to see it masked, revoke it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings as django_settings
from django.core import mail

from accounts.models import ApiKey
from accounts.secrets import api_secret_hash

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
STATIC_DIR = Path(django_settings.BASE_DIR) / "static"
PASSWORD = "a long browser passphrase 9"
SECRET_RE = re.compile(r"^sk-tg-[A-Za-z0-9]{40}$")


def _serve_static_from_source(route) -> None:
    # The test server has no collected static files (collectstatic is a deploy step),
    # so serve them from the source tree: the page then runs its real JavaScript.
    relative = urlparse(route.request.url).path.removeprefix("/static/")
    source = (STATIC_DIR / relative).resolve()
    if source.is_file() and STATIC_DIR.resolve() in source.parents:
        route.fulfill(path=str(source))
    else:
        route.continue_()


@pytest.mark.browser
def test_signup_verify_create_see_once_and_revoke_a_key(live_url, settings):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium package)")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_url)
        page = context.new_page()
        page.route(f"{live_url}/static/**", _serve_static_from_source)
        try:
            # sign up
            page.goto(f"{live_url}/accounts/signup/")
            page.fill("#id_email", "browser@example.test")
            page.fill("#id_password1", PASSWORD)
            page.fill("#id_password2", PASSWORD)
            page.get_by_role("button", name="Sign up").click()
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

            # verify through the e-mailed link (sent before the page above rendered)
            body = mail.outbox[-1].body
            link = re.search(rf"{re.escape(live_url)}/accounts/confirm-email/\S+/", body).group(0)
            page.goto(link)
            page.get_by_role("button", name="Confirm").click()
            expect(page).to_have_url(re.compile(r"/o/browser/$"))

            # create a key: the secret is shown once
            page.get_by_role("link", name="API keys").click()
            page.fill("#id_name", "laptop")
            page.get_by_role("button", name="Create key").click()
            expect(page.get_by_text("will not be shown again")).to_be_visible()
            secret = page.inner_text("#secret").strip()
            assert SECRET_RE.match(secret)
            page.get_by_role("button", name="Copy").click()
            expect(page.get_by_role("button", name="Copied")).to_be_visible()
            assert page.evaluate("navigator.clipboard.readText()") == secret

            # reload: the list, masked; the form was not posted again
            page.reload()
            expect(page).to_have_url(f"{live_url}/o/browser/keys/")
            row = page.get_by_role("row", name=re.compile("laptop"))
            expect(row).to_contain_text(f"{secret[:14]}…{secret[-4:]}")
            expect(row).to_contain_text("active")
            assert secret not in page.content()

            # revoke, after confirming
            row.get_by_role("link", name="Revoke").click()
            page.get_by_role("button", name="Revoke key").click()
            expect(page.get_by_text("is revoked")).to_be_visible()
            expect(page.get_by_role("row", name=re.compile("laptop"))).to_contain_text("revoked")
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "test_signup_flow.png"), full_page=True)
            raise
        finally:
            context.close()
            browser.close()

    # The ORM refuses to run while Playwright's sync API holds an event loop, so the
    # database is checked afterwards: exactly one key (the reload did not post the
    # form again), revoked.
    key = ApiKey.objects.get()
    assert key.secret_hash == api_secret_hash(secret)
    assert key.revoked_at is not None
