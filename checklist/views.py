"""Thin function views: access helper, form, service, redirect or render."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, services
from checklist.forms import AccountCreateForm, LoginForm, MembershipForm
from checklist.middleware import SESSION_KEY
from checklist.models import Case, Membership

View = Callable[..., HttpResponse]


def practice_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "active_membership": getattr(request, "membership", None),
        "active_practice": getattr(request, "practice", None),
        "user_memberships": getattr(request, "memberships", []),
    }


def practice_required(role: str | None = None) -> Callable[[View], View]:
    """Login, an active membership in the active practice and, if given, that role."""

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:
                return render(request, "checklist/no_membership.html", status=403)
            if role is not None and membership.role != role:
                audit.record_access(
                    request,
                    audit.PERMISSION_DENIED,
                    practice_id=membership.practice_id,
                    detail={"reason": "role", "needs": role},
                )
                return render(request, "checklist/forbidden.html", status=403)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _get_case_for_user(request: HttpRequest, pk: int) -> Case:
    """The only way a view reaches a case: scoped to the active practice, 404 otherwise.

    A miss on a case that exists in another practice is recorded as a permission denial.
    """
    practice = request.practice  # type: ignore[attr-defined]
    case = Case.objects.for_practice(practice).filter(pk=pk).first()
    if case is None:
        if Case.objects.filter(pk=pk).exists():
            audit.record_access(
                request,
                audit.PERMISSION_DENIED,
                practice_id=practice.pk,
                table="checklist_case",
                row_id=pk,
                detail={"reason": "other practice"},
            )
        raise Http404
    return case


def _get_membership_for_admin(request: HttpRequest, pk: int) -> Membership:
    practice = request.practice  # type: ignore[attr-defined]
    return get_object_or_404(
        Membership.objects.for_practice(practice).select_related("user"), pk=pk
    )


# --- public ---------------------------------------------------------------------------------


def healthz(request: HttpRequest) -> HttpResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


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


# --- cases ----------------------------------------------------------------------------------


@practice_required()
def case_list(request: HttpRequest) -> HttpResponse:
    cases = Case.objects.for_practice(request.practice).for_list()  # type: ignore[attr-defined]
    page = Paginator(cases, 50).get_page(request.GET.get("page"))
    return render(request, "checklist/case_list.html", {"page": page})


@login_required
@require_POST
def practice_switch(request: HttpRequest) -> HttpResponse:
    try:
        wanted = int(request.POST.get("practice", ""))
    except ValueError:
        raise Http404 from None
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


# --- accounts (practice admins) -------------------------------------------------------------


def _set_password_link(request: HttpRequest, membership: Membership) -> str:
    user = membership.user
    path = reverse(
        "set_password",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return request.build_absolute_uri(path)


def _hand_over(request: HttpRequest, membership: Membership) -> HttpResponse:
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


@practice_required(role=Membership.PRACTICE_ADMIN)
def account_list(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.for_practice(request.practice)  # type: ignore[attr-defined]
        .select_related("user")
        .order_by("-active", "user__username")
    )
    return render(request, "checklist/account_list.html", {"memberships": memberships})


@practice_required(role=Membership.PRACTICE_ADMIN)
def account_create(request: HttpRequest) -> HttpResponse:
    form = AccountCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership = services.account_create(practice=request.practice, **form.cleaned_data)  # type: ignore[attr-defined]
        return _hand_over(request, membership)
    return render(request, "checklist/account_form.html", {"form": form})


@practice_required(role=Membership.PRACTICE_ADMIN)
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _get_membership_for_admin(request, pk)
    initial = {"role": membership.role, "active": membership.active}
    form = MembershipForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_update(
                membership=membership,
                role=form.cleaned_data["role"],
                active=form.cleaned_data["active"],
                acting_membership=request.membership,  # type: ignore[attr-defined]
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The account was saved."))
            return redirect("account_list")
    return render(request, "checklist/account_edit.html", {"form": form, "membership": membership})


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def account_link(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _get_membership_for_admin(request, pk)
    if not membership.active:
        raise Http404
    return _hand_over(request, membership)


def error_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "404.html", status=404)


def error_500(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)
