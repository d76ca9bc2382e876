"""Helpers the browser tests share: logging in through the form, finding a control by its
label, reading a factor group's state, and screenshots to look at."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.auth import get_user_model

from tests.factories import PASSWORD, otp_device, totp_code

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, username="alice"):
    """Password, then the code of the user's test authenticator (created here if needed)."""
    device = otp_device(get_user_model().objects.get(username=username))
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/login/code/**")
    page.get_by_label("Code").fill(totp_code(device))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/cases/")


def field(page, label):
    """The form control labelled exactly `label` (crispy marks required ones with "*")."""
    return page.get_by_label(re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$"))


def state(page, group):
    return page.locator(f'[data-group="{group}"]').get_attribute("data-state")
