"""The second factor (django-otp): who needs one, checking a code, and the enrolment QR code.

Writes (enrolment, confirmation, removal) are in `services.py`; the device tables carry no
`practice_id`, so the triggers do not see them and the views record access events instead.
"""

from __future__ import annotations

import base64
import operator
import time
from collections.abc import Iterable
from functools import reduce
from typing import Any

import segno
from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, Value
from django.http import HttpRequest
from django_otp import device_classes, devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from checklist.models import Membership

RECOVERY_CODES = 10
# How long a re-authentication (password and code) counts for signing, exports and account
# management.
REAUTH_SECONDS = 10 * 60
REAUTH_SESSION_KEY = "reauth_at"


def required_for(memberships: Iterable[Membership]) -> bool:
    """Admins always need a second factor; physicians when their practice says so."""
    return any(
        m.role == Membership.PRACTICE_ADMIN or m.practice.second_factor_for_physicians
        for m in memberships
    )


def device_exists(user_id: Any) -> Any:
    """Whether the user `user_id` (an id or an OuterRef) has a confirmed device of any
    installed kind, as one boolean expression: a user without a device (a physician whose
    practice asks for none) is checked on every page, and django-otp's own check asks each
    device table in turn."""
    kinds = [
        Exists(model.objects.filter(user_id=user_id, confirmed=True)) for model in device_classes()
    ]
    if not kinds:
        return Value(False)
    return ExpressionWrapper(reduce(operator.or_, kinds), output_field=BooleanField())


def has_device(user: Any) -> bool:
    """Whether the user has a confirmed device, in one query."""
    if user is None or user.pk is None:
        return False
    found = get_user_model().objects.filter(pk=user.pk).values_list(device_exists(user.pk))
    return bool(found.get()[0])


def request_has_device(request: HttpRequest) -> bool:
    """`has_device` for the request's user, from the memberships the practice middleware read
    (that query answers it: no query of its own); asked only of a user without memberships."""
    memberships = getattr(request, "memberships", None)
    if memberships and memberships[0].user_id == request.user.pk:  # not from before a login
        return bool(memberships[0].user_has_device)
    return has_device(request.user)


def check_code(user: Any, code: str) -> Device | None:
    """The confirmed device that accepts `code` (an authenticator code or an unused recovery
    code, which is used up), or None. Rows are locked so a code cannot be used twice at once."""
    code = "".join(code.split())
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if device.verify_token(code):
                return device  # type: ignore[no-any-return]
    return None


def reauth_is_recent(session: Any) -> bool:
    """Whether the password and code were given (at login or again) within REAUTH_SECONDS."""
    at = session.get(REAUTH_SESSION_KEY)
    return isinstance(at, (int, float)) and 0 <= time.time() - at <= REAUTH_SECONDS


def is_recovery(device: Device) -> bool:
    return isinstance(device, StaticDevice)


def secret_text(device: TOTPDevice) -> str:
    """The key in base32, in groups of four, for typing into an authenticator by hand."""
    text = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def qr_data_uri(device: TOTPDevice) -> str:
    """The enrolment QR code as an SVG data URI, rendered here: no external service sees the
    key, and the CSP allows `data:` images but no inline styles."""
    return str(segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2))


def password_is_right(request: HttpRequest, user: Any, password: str) -> bool:
    """The user's password asked again (signing, re-authentication). Through `authenticate`, so
    django-axes counts a wrong one like a failed login: guessing in an open session locks the
    account as guessing at the login page does."""
    try:
        found = authenticate(request, username=user.get_username(), password=password)
    except PermissionDenied:  # locked out
        return False
    return found is not None and found.pk == user.pk
