"""The second factor: the code step after the password, enrolment with recovery codes,
re-authentication before signing, exports and account management, the practice's setting and
an admin's removal of another user's devices (a lost phone).

The device tables carry no `practice_id`, so the audit triggers do not see them: every
enrolment, removal, recovery-code use and failed code is recorded here as an access event.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from checklist import audit, second_factor, services
from checklist.access import PracticeRequest, practice_required, recent_reauth_required
from checklist.forms import PracticeSecondFactorForm, ReauthForm, SecondFactorCodeForm
from checklist.models import Membership


def _next(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return reverse("case_list")


def _record(request: HttpRequest, op: str, user: Any = None, **detail: Any) -> None:
    """One event in the chain of each practice the user belongs to, as a login is recorded."""
    who: Any = user if user is not None else request.user
    practice_ids: list[int | None] = [
        *sorted(
            Membership.objects.filter(user=who, active=True).values_list("practice_id", flat=True)
        )
    ]
    for practice_id in practice_ids or [None]:
        audit.record_access(
            request,
            op,
            practice_id=practice_id,
            table="auth_user",
            row_id=who.pk,
            detail=detail,
        )


def accept_code(request: HttpRequest, form: Any) -> bool:
    """Checks the form's code against the user's devices; a wrong code is a form error and an
    access event, a recovery code is used up and recorded."""
    device = second_factor.check_code(request.user, form.cleaned_data["code"])
    if device is None:
        _record(request, audit.OTP_FAILED, step=request.resolver_match.url_name)  # type: ignore[union-attr]
        form.add_error("code", _("This code is not correct or was used already."))
        return False
    if second_factor.is_recovery(device):
        _record(request, audit.OTP_RECOVERY_USED)
    otp_login(request, device)
    request.session[second_factor.REAUTH_SESSION_KEY] = time.time()
    return True


@login_required
def otp_verify(request: HttpRequest) -> HttpResponse:
    """The second step of the login: a code from the user's authenticator or a recovery code."""
    user: Any = request.user
    if user.is_verified() or not second_factor.has_device(user):
        return redirect(_next(request))
    form = SecondFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and accept_code(request, form):
        return redirect(_next(request))
    return render(request, "checklist/otp_verify.html", {"form": form, "next": _next(request)})


@login_required
def otp_enrol(request: HttpRequest) -> HttpResponse:
    """Enrolment: scan the QR code (or type the key), confirm with a code, and see the
    recovery codes, once."""
    user: Any = request.user
    if second_factor.has_device(user):
        return redirect(_next(request))
    device = services.second_factor_pending_device(user=user)
    form = SecondFactorCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = "".join(form.cleaned_data["code"].split())
        if device.verify_token(code):
            codes = services.second_factor_confirm(
                device=device, count=second_factor.RECOVERY_CODES
            )
            otp_login(request, device)
            request.session[second_factor.REAUTH_SESSION_KEY] = time.time()
            _record(request, audit.OTP_ENROLLED)
            return render(
                request,
                "checklist/otp_recovery_codes.html",
                {"codes": codes, "next": _next(request)},
            )
        _record(request, audit.OTP_FAILED, step="otp_enrol")
        form.add_error("code", _("This code is not correct. Check the time on your phone."))
    return render(
        request,
        "checklist/otp_enrol.html",
        {
            "form": form,
            "next": _next(request),
            "qr": second_factor.qr_data_uri(device),
            "secret": second_factor.secret_text(device),
        },
    )


@login_required
def reauth(request: HttpRequest) -> HttpResponse:
    """Password (and code, with a second factor) again before signing, exports and account
    management; it counts for `second_factor.REAUTH_SECONDS`."""
    user: Any = request.user
    with_code = second_factor.has_device(user)
    form = ReauthForm(request.POST or None, with_code=with_code)
    if request.method == "POST" and form.is_valid():
        if not second_factor.password_is_right(request, user, form.cleaned_data["password"]):
            _record(request, audit.REAUTH_REFUSED)
            form.add_error("password", _("The password is not correct."))
        elif not with_code or accept_code(request, form):
            request.session[second_factor.REAUTH_SESSION_KEY] = time.time()
            return redirect(_next(request))
    return render(request, "checklist/reauth.html", {"form": form, "next": _next(request)})


@practice_required(role=Membership.PRACTICE_ADMIN)
@recent_reauth_required
@require_POST
def practice_second_factor(request: PracticeRequest) -> HttpResponse:
    form = PracticeSecondFactorForm(request.POST)
    if form.is_valid():
        wanted = form.cleaned_data["second_factor_for_physicians"]
        if wanted != request.practice.second_factor_for_physicians:
            services.practice_set_second_factor(practice=request.practice, for_physicians=wanted)
            audit.record_access(
                request,
                audit.SECOND_FACTOR_SETTING,
                practice_id=request.practice.pk,
                table="checklist_practice",
                row_id=request.practice.pk,
                detail={"second_factor_for_physicians": wanted},
            )
        messages.success(request, _("The practice setting was saved."))
    return redirect("account_list")


@practice_required(role=Membership.PRACTICE_ADMIN)
@recent_reauth_required
@require_POST
def account_second_factor_remove(request: PracticeRequest, pk: int) -> HttpResponseBase:
    """A lost device: another admin of the practice removes the user's devices; the user
    enrols again at their next login. Never one's own (that would skip the second factor)."""
    membership = (
        Membership.objects.for_practice(request.practice).select_related("user").filter(pk=pk)
    ).first()
    if membership is None or membership.user_id == request.user.pk or not membership.active:
        raise Http404
    # The device guards the user in every practice: only an admin of each of them removes it.
    theirs = set(
        Membership.objects.filter(user_id=membership.user_id, active=True).values_list(
            "practice_id", flat=True
        )
    )
    mine = set(
        Membership.objects.filter(
            user=request.user, active=True, role=Membership.PRACTICE_ADMIN
        ).values_list("practice_id", flat=True)
    )
    if not theirs <= mine:
        messages.error(
            request,
            _(
                "This account also belongs to a practice in which you are not an admin: only an"
                " admin of each of its practices can remove its second factor."
            ),
        )
        return redirect("account_edit", pk=membership.pk)
    removed = services.second_factor_remove(user=membership.user)
    _record(request, audit.OTP_REMOVED, user=membership.user, devices=removed)
    messages.success(
        request, _("The second factor was removed. The user enrols again at the next login.")
    )
    return redirect("account_edit", pk=membership.pk)
