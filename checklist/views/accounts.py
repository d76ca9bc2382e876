"""Login, set-password links, practice switch, and account management by practice admins."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from checklist import audit, forms, lockout, second_factor, services, sessions
from checklist.access import (
    PracticeRequest,
    practice_required,
    recent_reauth_required,
    second_factor_step,
)
from checklist.forms import AccountCreateForm, AccountTitleForm, LoginForm, MembershipForm
from checklist.middleware import SESSION_KEY
from checklist.models import AccountProfile, Membership, display_name


def _title_of(user: Any) -> str:
    profile = AccountProfile.objects.filter(user=user).first()
    return profile.title if profile else ""


def _get_membership_for_admin(request: PracticeRequest, pk: int) -> Membership:
    practice = request.practice
    return get_object_or_404(
        Membership.objects.for_practice(practice).select_related("user"), pk=pk
    )


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class SetPasswordView(auth_views.PasswordResetConfirmView):
    template_name = "registration/set_password.html"
    post_reset_login = False
    reset_url_token = "set"  # noqa: S105 - the URL segment name, not a secret

    def get_success_url(self) -> str:
        messages.success(self.request, _("Your password is set. Please log in."))
        return reverse("login")


@login_required
@require_POST
def practice_switch(request: HttpRequest) -> HttpResponse:
    form = forms.IdForm({"id": request.POST.get("practice")})
    if not form.is_valid():
        raise Http404
    wanted = form.cleaned_data["id"]
    memberships = getattr(request, "memberships", [])
    if not any(m.practice_id == wanted for m in memberships):
        current = getattr(request, "practice", None)
        audit.record_access(
            request,
            audit.PERMISSION_DENIED,
            practice_id=current.pk if current else None,
            table="checklist_practice",
            row_id=wanted,
            detail={"reason": "not a member"},
        )
        raise Http404
    request.session[SESSION_KEY] = wanted
    return redirect("case_list")


def _set_password_link(request: PracticeRequest, membership: Membership) -> str:
    user = membership.user
    path = reverse(
        "set_password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return request.build_absolute_uri(path)


def _hand_over(request: PracticeRequest, membership: Membership) -> HttpResponse:
    link = _set_password_link(request, membership)
    mailed = False
    if settings.EMAIL_CONFIGURED and membership.user.email:
        send_mail(
            _("Set your password"),
            _("Please set your password with this link: %(link)s") % {"link": link},
            None,
            [membership.user.email],
        )
        mailed = True
    return render(
        request,
        "checklist/account_link.html",
        {"membership": membership, "link": link, "mailed": mailed},
    )


@login_required
def my_account(request: HttpRequest) -> HttpResponseBase:
    """The user's own account: their name as every page shows it, and their title."""
    pending = second_factor_step(request)
    if pending is not None:
        return pending
    user = request.user
    form = AccountTitleForm(request.POST or None, initial={"title": _title_of(user)})
    if request.method == "POST" and form.is_valid():
        services.account_set_title(user=user, title=form.cleaned_data["title"])
        messages.success(request, _("Your account was saved."))
        return redirect("my_account")
    return render(
        request,
        "checklist/account_self.html",
        {"form": form, "shown_as": display_name(user)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def session_keep_alive(request: HttpRequest) -> HttpResponse:
    """The seconds until the session ends without activity, for the warning in app.js. GET asks
    (sent as background, so asking is not activity); POST is the "Stay signed in" button: the
    user is active now. A session past its timeout never gets here (SessionTimeoutMiddleware
    answers `{"seconds_left": 0}`)."""
    now = time.time()
    if request.method == "POST":
        sessions.touch(request.session, now)
    return JsonResponse(
        {
            "seconds_left": sessions.seconds_left(request.session, now),
            "final": sessions.ends_at_max(request.session, now),
        }
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
def account_list(request: PracticeRequest) -> HttpResponse:
    memberships = lockout.with_locked(
        Membership.objects.for_practice(request.practice)
        .select_related("user__account_profile")
        .order_by("-active", "user__username")
    )
    return render(request, "checklist/account_list.html", {"memberships": memberships})


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
@recent_reauth_required
def account_unlock(request: PracticeRequest, pk: int) -> HttpResponse:
    """Ends a lockout of one of this practice's users, from every address, audited."""
    membership = _get_membership_for_admin(request, pk)
    username = membership.user.get_username()
    with transaction.atomic():
        lockout.unlock(username)
        audit.record_access(
            request,
            audit.ACCOUNT_UNLOCKED,
            practice_id=membership.practice_id,
            table="checklist_membership",
            row_id=membership.pk,
            detail={"account": username},
        )
    messages.success(
        request, _("%(name)s can log in again.") % {"name": display_name(membership.user)}
    )
    return redirect("account_list")


@practice_required(role=Membership.PRACTICE_ADMIN)
@recent_reauth_required
def account_create(request: PracticeRequest) -> HttpResponse:
    form = AccountCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership = services.account_create(practice=request.practice, **form.cleaned_data)
        return _hand_over(request, membership)
    return render(request, "checklist/account_form.html", {"form": form})


@practice_required(role=Membership.PRACTICE_ADMIN)
@recent_reauth_required
def account_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    membership = _get_membership_for_admin(request, pk)
    initial = {
        "role": membership.role,
        "active": membership.active,
        "title": _title_of(membership.user),
    }
    form = MembershipForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_update(
                membership=membership,
                role=form.cleaned_data["role"],
                active=form.cleaned_data["active"],
                acting_membership=request.membership,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            services.account_set_title(user=membership.user, title=form.cleaned_data["title"])
            messages.success(request, _("The account was saved."))
            return redirect("account_list")
    return render(
        request,
        "checklist/account_edit.html",
        {
            "form": form,
            "membership": membership,
            "locked": lockout.is_locked(membership.user.get_username()),
            "has_second_factor": second_factor.has_device(membership.user),
        },
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
@recent_reauth_required
@require_POST
def account_link(request: PracticeRequest, pk: int) -> HttpResponse:
    """A new set-password link, only for an account that has no password yet and belongs to
    this practice alone: an admin must never be able to take over someone's existing login
    (which may also open other practices)."""
    membership = _get_membership_for_admin(request, pk)
    if not membership.active:
        raise Http404
    user = membership.user
    elsewhere = Membership.objects.filter(user=user).exclude(practice_id=membership.practice_id)
    if user.has_usable_password() or elsewhere.exists():
        messages.error(
            request,
            _(
                "This account already has a password or belongs to another practice too; a"
                " set-password link is not issued for it."
            ),
        )
        return redirect("account_list")
    return _hand_over(request, membership)
