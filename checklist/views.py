"""Thin function views: access helper, form, service, redirect or render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import DatabaseError, connection
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Length
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.decorators.http import require_POST

from checklist import audit, forms, notes, rules, services
from checklist.forms import AccountCreateForm, LoginForm, MembershipForm
from checklist.middleware import SESSION_KEY
from checklist.models import (
    COMMON_BIOMARKERS,
    AdverseEvent,
    AuditEvent,
    AuditVerification,
    Biomarker,
    BoardNote,
    BoardNoteVersion,
    BoardOutcome,
    Case,
    CaseRow,
    CatalogueVersion,
    Category,
    Checklist,
    Code,
    Comorbidity,
    ImmuneAdverseEvent,
    ImmuneFinding,
    ItemStatus,
    Medication,
    Membership,
    Metastasis,
    NoteState,
    OrganFunction,
    PerformanceStatus,
    Situation,
    StagingRecord,
    TherapyLine,
    Tumour,
    user_display,
)
from checklist.record import (
    CaseRecord,
    catalogue_categories,
    category_text,
    latest_published,
    version_diff,
)

View = Callable[..., HttpResponseBase]


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
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
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


def _get_in_practice(request: HttpRequest, queryset: Any, pk: int) -> Any:
    """The row `pk` of `queryset` within the active practice, 404 otherwise. A miss on a row
    that exists in another practice is recorded as a permission denial."""
    practice = request.practice  # type: ignore[attr-defined]
    found = queryset.for_practice(practice).filter(pk=pk).first()
    if found is None:
        if queryset.model.objects.filter(pk=pk).exists():
            audit.record_access(
                request,
                audit.PERMISSION_DENIED,
                practice_id=practice.pk,
                table=queryset.model._meta.db_table,
                row_id=pk,
                detail={"reason": "other practice"},
            )
        raise Http404
    return found


def _get_case_for_user(request: HttpRequest, pk: int) -> Case:
    """The only way a view reaches a case: scoped to the active practice, 404 otherwise."""
    case: Case = _get_in_practice(request, Case.objects.all(), pk)
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


def error_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "404.html", status=404)


def error_500(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)


# --- the case record ------------------------------------------------------------------------


@dataclass(frozen=True)
class RowKind:
    model: type[CaseRow]
    form: type[forms.RowForm]
    title: Any
    anchor: str


ROW_KINDS: dict[str, RowKind] = {
    "tumour": RowKind(Tumour, forms.TumourForm, _l("Primary tumour"), "tumours"),
    "staging": RowKind(StagingRecord, forms.StagingForm, _l("Staging record"), "staging"),
    "biomarker": RowKind(Biomarker, forms.BiomarkerForm, _l("Biomarker result"), "biomarkers"),
    "metastasis": RowKind(Metastasis, forms.MetastasisForm, _l("Metastasis"), "metastases"),
    "line": RowKind(TherapyLine, forms.TherapyLineForm, _l("Therapy line"), "therapy"),
    "event": RowKind(AdverseEvent, forms.AdverseEventForm, _l("Adverse event"), "therapy"),
    "performance": RowKind(
        PerformanceStatus, forms.PerformanceStatusForm, _l("Performance status"), "performance"
    ),
    "immune": RowKind(
        ImmuneFinding, forms.ImmuneFindingForm, _l("Immune-relevant findings"), "immune"
    ),
    "irae": RowKind(
        ImmuneAdverseEvent,
        forms.ImmuneAdverseEventForm,
        _l("Prior immune-related adverse event"),
        "immune",
    ),
    "comorbidity": RowKind(Comorbidity, forms.ComorbidityForm, _l("Comorbidity"), "situation"),
    "organ": RowKind(OrganFunction, forms.OrganFunctionForm, _l("Organ function"), "situation"),
    "medication": RowKind(Medication, forms.MedicationForm, _l("Current medication"), "situation"),
}

SORTS = {
    "label": (("label", "pk"), False),
    "-updated": (("updated_at", "pk"), True),
    "-created": (("created_at", "pk"), True),
}
PAGE_SIZE = 50


def _expected_version(request: HttpRequest) -> int:
    """The case version the form was opened at. A form without one is treated as stale (-1
    matches no version), so a save can never skip the check."""
    try:
        return int(request.POST.get("expected_version", ""))
    except ValueError:
        return -1


def _int(value: str | None, default: int | None = None, limit: int = 2**62) -> int | None:
    """An integer from a query or form value; anything else (or out of range) is `default`."""
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if -limit <= number <= limit else default


def _stale(request: HttpRequest, error: services.StaleVersion, context: dict[str, Any]):
    """The case changed since the form was opened: show who changed what, keep the input."""
    changes = audit.case_changes_since(error.case, error.expected)
    context.update({"case": error.case, "changes": changes, "stale": True})
    return render(request, "checklist/case_stale.html", context, status=409)


def _case_list_queryset(request: HttpRequest) -> tuple[Any, dict[str, str]]:
    params = {k: request.GET.get(k, "").strip() for k in ("q", "situation", "tumour", "complete")}
    cases = Case.objects.for_practice(request.practice).for_list().with_completeness()  # type: ignore[attr-defined]
    if params["q"]:
        cases = cases.filter(label__icontains=params["q"])
    if params["situation"]:
        cases = cases.filter(situation=params["situation"])
    if params["tumour"]:
        cases = cases.filter(
            Exists(Tumour.objects.filter(case=OuterRef("pk"), oncotree_code=params["tumour"]))
        )
    if params["complete"] == "yes":
        cases = cases.filter(complete=True)
    elif params["complete"] == "no":
        cases = cases.filter(complete=False)
    return cases, params


@practice_required()
def case_list(request: HttpRequest) -> HttpResponse:
    """Keyset pagination: the cursor is the last row's sort value and id, so a deep page costs
    what the first costs."""
    cases, params = _case_list_queryset(request)
    sort = request.GET.get("sort", "label")
    (key, tiebreak), descending = SORTS.get(sort, SORTS["label"])
    total = cases.count()
    after = request.GET.get("after", "")
    if after:
        raw, _sep, last_pk = after.rpartition("|")
        last = _int(last_pk, 0)
        value: Any = raw
        if key != "label":
            try:
                value = parse_datetime(raw)
            except ValueError:
                value = None
        if value is not None:  # a malformed cursor starts from the first page
            op = "lt" if descending else "gt"
            cases = cases.filter(
                Q(**{f"{key}__{op}": value}) | Q(**{key: value, f"pk__{op}": last})
            )
    order = [f"-{key}", "-pk"] if descending else [key, "pk"]
    rows = list(cases.order_by(*order)[: PAGE_SIZE + 1])
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_cursor = ""
    if has_next:
        last_row = rows[-1]
        value = getattr(last_row, key)
        next_cursor = f"{value.isoformat() if key != 'label' else value}|{last_row.pk}"
    tumour_codes = (
        Tumour.objects.for_practice(request.practice)  # type: ignore[attr-defined]
        .values_list("oncotree_code", "oncotree_name")
        .distinct()
        .order_by("oncotree_name")
    )
    query = {k: v for k, v in params.items() if v}
    return render(
        request,
        "checklist/case_list.html",
        {
            "cases": rows,
            "total": total,
            "params": params,
            "sort": sort,
            "next_query": urlencode({**query, "sort": sort, "after": next_cursor})
            if has_next
            else "",
            "first_query": urlencode({**query, "sort": sort}) if after else "",
            "situations": Situation.choices,
            "tumour_codes": list(tumour_codes),
            "sorts": [
                ("label", _("label")),
                ("-updated", _("last changed")),
                ("-created", _("created")),
            ],
        },
    )


@practice_required(role=Membership.PHYSICIAN)
def case_create(request: HttpRequest) -> HttpResponse:
    form = forms.CaseForm(request.POST or None, practice=request.practice)  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        try:
            case = services.case_create(
                practice=request.practice,  # type: ignore[attr-defined]
                data=form.cleaned_data,
                acting_user=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("case_detail", pk=case.pk)
    return render(request, "checklist/case_form.html", {"form": form})


@practice_required(role=Membership.PHYSICIAN)
def case_edit(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    form = forms.CaseForm(request.POST or None, instance=case, practice=request.practice)  # type: ignore[attr-defined]
    return _save_case_form(request, case, form, "checklist/case_form.html")


@practice_required(role=Membership.PHYSICIAN)
def case_metastasis_status(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    form = forms.MetastasisStatusForm(request.POST or None, instance=case)
    return _save_case_form(request, case, form, "checklist/case_metastasis_status.html")


@practice_required(role=Membership.PHYSICIAN)
def case_prior_therapy(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    form = forms.PriorTherapyForm(
        request.POST or None, initial={"no_prior_therapy": case.no_prior_therapy}
    )
    if request.method == "POST" and form.is_valid():
        data = {
            "no_prior_therapy": form.cleaned_data["no_prior_therapy"],
            "prior_therapy_stated_on": timezone.localdate(),
        }
        try:
            services.case_update(
                case=case,
                data=data,
                acting_user=request.user,
                expected_version=_expected_version(request),
            )
        except services.StaleVersion as error:
            return _stale(request, error, {"form": form, "title": _("Prior therapy")})
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + "#therapy")
    return redirect("case_detail", pk=case.pk)


def _save_case_form(request: HttpRequest, case: Case, form: Any, template: str) -> HttpResponse:
    context = {"form": form, "case": case}
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            services.case_update(
                case=case,
                data=data,
                acting_user=request.user,
                expected_version=_expected_version(request),
            )
        except services.StaleVersion as error:
            return _stale(request, error, context)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("case_detail", pk=case.pk)
    return render(request, template, context)


@practice_required()
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    record = CaseRecord.load(case)
    audit.record_access(
        request,
        audit.CASE_VIEWED,
        practice_id=case.practice_id,
        table="checklist_case",
        row_id=case.pk,
        case_id=case.pk,
        detail={"label": case.label},
    )
    return render(
        request,
        "checklist/case_detail.html",
        {
            "case": case,
            "record": record,
            "summary": record.summary,
            "gaps": record.gaps,
            "timeline": record.timeline(timezone.localdate(), get_language()),
            "site_labels": record.site_labels(get_language()),
            "code_labels": record.code_labels(get_language()),
            "markers": COMMON_BIOMARKERS,
        },
    )


def _row_kind(kind: str) -> RowKind:
    if kind not in ROW_KINDS:
        raise Http404
    return ROW_KINDS[kind]


def _row_form(request: HttpRequest, case: Case, kind: str, instance: Any = None) -> Any:
    row_kind = _row_kind(kind)
    extra: dict[str, Any] = {}
    if row_kind.form is forms.TherapyLineForm:
        extra["categories"] = catalogue_categories(case.practice_id)
    if kind == "event" and request.method == "GET" and instance is None:
        extra["initial"] = {"line": request.GET.get("line")}
    return row_kind.form(
        request.POST or None,
        instance=instance,
        case=case,
        language=get_language(),
        **extra,
    )


@practice_required(role=Membership.PHYSICIAN)
def case_row_create(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    return _save_row(request, case, kind, _row_form(request, case, kind))


@practice_required(role=Membership.PHYSICIAN)
def case_row_edit(request: HttpRequest, pk: int, kind: str, row_pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    row = get_object_or_404(_row_kind(kind).model.objects.filter(case=case), pk=row_pk)
    return _save_row(request, case, kind, _row_form(request, case, kind, row))


def _save_row(request: HttpRequest, case: Case, kind: str, form: Any) -> HttpResponse:
    row_kind = _row_kind(kind)
    context = {
        "form": form,
        "case": case,
        "kind": kind,
        "title": row_kind.title,
        "markers": COMMON_BIOMARKERS,
    }
    if request.method == "POST" and form.is_valid():
        try:
            services.case_row_save(
                case=case,
                row=form.save(commit=False),
                acting_user=request.user,
                expected_version=_expected_version(request),
            )
        except services.StaleVersion as error:
            return _stale(request, error, context)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if kind == "line":
                form.save_m2m()
            for warning in form.warnings:
                messages.warning(request, warning)
            messages.success(request, _("Saved."))
            return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_kind.anchor}")
    return render(request, "checklist/case_row_form.html", context)


@practice_required(role=Membership.PHYSICIAN)
def case_row_delete(request: HttpRequest, pk: int, kind: str, row_pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    row_kind = _row_kind(kind)
    row = get_object_or_404(row_kind.model.objects.filter(case=case), pk=row_pk)
    context = {"case": case, "row": row, "kind": kind, "title": row_kind.title}
    if request.method == "POST":
        try:
            services.case_row_delete(
                case=case,
                row=row,
                acting_user=request.user,
                expected_version=_expected_version(request),
            )
        except services.StaleVersion as error:
            return _stale(request, error, context)
        messages.success(request, _("Deleted."))
        return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_kind.anchor}")
    return render(request, "checklist/case_row_delete.html", context)


@practice_required()
def oncotree_search(request: HttpRequest) -> HttpResponse:
    """Type-ahead over OncoTree names and codes; tissues are shown for context, not offered."""
    query = request.GET.get("oncotree", request.GET.get("q", "")).strip()
    if "(" in query:
        query = query.split("(")[0].strip()
    results: list[Code] = []
    if len(query) >= 2:
        results = list(
            Code.objects.filter(system="oncotree", selectable=True)
            .filter(Q(display__icontains=query) | Q(code__istartswith=query))
            .order_by(Length("display"), "display")[:15]
        )
    return render(request, "checklist/_oncotree_results.html", {"results": results, "query": query})


# --- the checklist --------------------------------------------------------------------------


def _checklist_context(request: HttpRequest, case: Case) -> dict[str, Any]:
    language = get_language()
    record = CaseRecord.load(case)
    checklist = Checklist.objects.filter(case=case).select_related("version").first()
    newest = latest_published(case.practice_id)
    version = checklist.version if checklist else newest
    if version is None:
        raise Http404
    categories = {c.code: c for c in version.categories.order_by("position")}
    items = (
        {i.category_id: i for i in checklist.items.select_related("set_by")} if checklist else {}
    )
    view = rules.checklist(
        record.facts,
        rules.Catalogue(
            version.number, tuple(category_text(c, language) for c in categories.values())
        ),
    )
    labels = record.code_labels(language)
    rows = [
        {
            "row": row,
            "category": categories[row.category.code],
            "item": items.get(categories[row.category.code].pk),
            "lines": [
                {
                    "line": line,
                    "end_reason": labels["mii:therapie-ende-grund"].get(line.end_reason, ""),
                    "types": [labels["mii:therapie-typ"].get(t, t) for t in line.types],
                }
                for line in row.linked_lines
            ],
        }
        for row in view.rows
    ]
    newer = newest if newest and newest.number > version.number else None
    return {
        "case": case,
        "record": record,
        "view": view,
        "rows": rows,
        "version": version,
        "checklist": checklist,
        "newer": newer,
        "newer_diff": version_diff(version, newer) if newer else (),
        "statuses": ItemStatus.choices,
        "mechanisms": version.mechanisms,
    }


@practice_required()
def checklist_page(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    context = _checklist_context(request, case)
    audit.record_access(
        request,
        audit.CASE_VIEWED,
        practice_id=case.practice_id,
        table="checklist_case",
        row_id=case.pk,
        case_id=case.pk,
        detail={"label": case.label, "page": "checklist"},
    )
    return render(request, "checklist/checklist.html", context)


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def checklist_item(request: HttpRequest, pk: int, category_pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    # Only an active category of the version this checklist is worked under (the newest
    # published one before the first save): never a draft's, a retired or an older one.
    checklist = Checklist.objects.filter(case=case).first()
    version_id = (
        checklist.version_id
        if checklist
        else getattr(latest_published(case.practice_id), "pk", None)
    )
    category = get_object_or_404(
        Category.objects.filter(
            practice_id=case.practice_id, version_id=version_id, active=True
        ).select_related("version"),
        pk=category_pk,
    )
    status = request.POST.get("status", "")
    note = request.POST.get("note", "").strip()[:4000]
    error = ""
    if status not in ItemStatus.values:
        error = _("Choose one of the statuses.")
    else:
        # The item's revision as the form showed it (0: no item yet); missing counts as stale.
        revision = _int(request.POST.get("revision"), -1)
        try:
            services.checklist_item_set(
                case=case,
                version=category.version,
                category=category,
                status=status,
                note=note,
                acting_user=request.user,
                expected_revision=revision,
            )
        except services.StaleItem as stale:
            error = _(
                "%(who)s changed this item in the meantime (now “%(status)s”). Your entry was"
                " not saved; check it and save again."
            ) % {
                "who": stale.item.set_by.get_username() if stale.item.set_by else "?",
                "status": stale.item.get_status_display(),
            }
        except ValidationError as invalid:
            error = " ".join(invalid.messages)
    if not request.htmx:  # type: ignore[attr-defined]
        if error:
            messages.error(request, error)
        return redirect(reverse("checklist", kwargs={"pk": case.pk}) + f"#category-{category.code}")
    context = _checklist_context(request, case)
    row = next((r for r in context["rows"] if r["category"].pk == category.pk), None)
    if row is None:  # the checklist moved to another version meanwhile: reload the page
        response = HttpResponse(status=409)
        response["HX-Refresh"] = "true"
        return response
    return render(
        request,
        "checklist/_checklist_item.html",
        {**context, "r": row, "error": error, "posted_note": note if error else None},
        status=409 if error else 200,
    )


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def checklist_move(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    version = get_object_or_404(
        CatalogueVersion.objects.filter(practice_id=case.practice_id, published_at__isnull=False),
        pk=_int(request.POST.get("version"), 0),
    )
    if Checklist.objects.filter(case=case).exists():
        services.checklist_move(case=case, to_version=version, acting_user=request.user)
        messages.success(
            request, _("The checklist now uses catalogue version %(n)s.") % {"n": version.number}
        )
    return redirect("checklist", pk=case.pk)


# --- the catalogue (practice admins edit; everyone reads) ------------------------------------


def _get_version(request: HttpRequest, number: int) -> CatalogueVersion:
    return get_object_or_404(
        CatalogueVersion.objects.filter(practice=request.practice),  # type: ignore[attr-defined]
        number=number,
    )


@practice_required()
def catalogue_list(request: HttpRequest) -> HttpResponse:
    versions = (
        CatalogueVersion.objects.filter(practice=request.practice)  # type: ignore[attr-defined]
        .select_related(  # type: ignore[attr-defined]
            "published_by"
        )
        .order_by("-number")
    )
    return render(request, "checklist/catalogue_list.html", {"versions": versions})


@practice_required()
def catalogue_version(request: HttpRequest, number: int) -> HttpResponse:
    version = _get_version(request, number)
    previous = (
        CatalogueVersion.objects.filter(
            practice=request.practice,  # type: ignore[attr-defined]
            number__lt=number,
            published_at__isnull=False,  # type: ignore[attr-defined]
        )
        .order_by("-number")
        .first()
    )
    return render(
        request,
        "checklist/catalogue_version.html",
        {
            "version": version,
            "categories": version.categories.order_by("position"),
            "previous": previous,
            "diff": version_diff(previous, version) if previous else (),
            "publish_form": forms.PublishForm(),
        },
    )


@practice_required()
def catalogue_diff(request: HttpRequest) -> HttpResponse:
    try:
        a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        raise Http404 from None
    old, new = _get_version(request, a), _get_version(request, b)
    return render(
        request,
        "checklist/catalogue_diff.html",
        {"old": old, "new": new, "diff": version_diff(old, new)},
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_draft(request: HttpRequest) -> HttpResponse:
    try:
        if request.POST.get("source") == "shipped":
            draft = services.catalogue_import_shipped(practice=request.practice)  # type: ignore[attr-defined]
        else:
            draft = services.catalogue_draft_create(practice=request.practice)  # type: ignore[attr-defined]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("catalogue_list")
    return redirect("catalogue_version", number=draft.number)


@practice_required(role=Membership.PRACTICE_ADMIN)
def catalogue_category(request: HttpRequest, number: int, category_pk: int | None = None):
    version = _get_version(request, number)
    if not version.is_draft:
        messages.error(request, _("A published version is never changed; start a draft."))
        return redirect("catalogue_version", number=number)
    category = get_object_or_404(version.categories, pk=category_pk) if category_pk else Category()
    form = forms.CategoryForm(request.POST or None, instance=category)
    if request.method == "POST" and form.is_valid():
        try:
            services.category_save(
                category=form.save(commit=False) if category_pk else _new_category(form, version)
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("catalogue_version", number=number)
    return render(request, "checklist/catalogue_category.html", {"form": form, "version": version})


def _new_category(form: Any, version: CatalogueVersion) -> Category:
    category: Category = form.save(commit=False)
    category.version = version
    category.practice_id = version.practice_id
    return category


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_category_action(
    request: HttpRequest, number: int, category_pk: int, action: str
) -> HttpResponse:
    version = _get_version(request, number)
    category = get_object_or_404(version.categories, pk=category_pk)
    try:
        if action in ("up", "down"):
            services.category_move(category=category, up=action == "up")
        elif action in ("retire", "reactivate"):
            services.category_set_active(category=category, active=action == "reactivate")
        else:
            raise Http404
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect(reverse("catalogue_version", kwargs={"number": number}) + f"#c-{category.code}")


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_publish(request: HttpRequest, number: int) -> HttpResponse:
    version = _get_version(request, number)
    form = forms.PublishForm(request.POST)
    if form.is_valid():
        try:
            services.catalogue_publish(
                version=version,
                change_note=form.cleaned_data["change_note"],
                acting_user=request.user,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, _("Version %(n)s is published.") % {"n": version.number})
    else:
        messages.error(request, _("Say what changed in this version."))
    return redirect("catalogue_version", number=number)


@practice_required(role=Membership.PRACTICE_ADMIN)
@require_POST
def catalogue_discard(request: HttpRequest, number: int) -> HttpResponse:
    version = _get_version(request, number)
    try:
        services.catalogue_discard_draft(version=version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("catalogue_version", number=number)
    return redirect("catalogue_list")


# --- tumour-board notes ----------------------------------------------------------------------


def _get_note_for_user(request: HttpRequest, pk: int) -> BoardNote:
    """Notes are reached only within the active practice; another practice's note is 404."""
    queryset = BoardNote.objects.select_related("case", "case__practice")
    note: BoardNote = _get_in_practice(request, queryset, pk)
    return note


def _version(note: BoardNote, number: int | None = None) -> BoardNoteVersion:
    versions = note.versions.select_related("created_by", "signed_by", "supersedes")
    if number is None:
        found = versions.order_by("-number").first()
    else:
        found = versions.filter(number=number).first()
    if found is None:
        raise Http404
    return found


@practice_required()
def note_list(request: HttpRequest) -> HttpResponse:
    practice = request.practice  # type: ignore[attr-defined]
    latest = BoardNoteVersion.objects.filter(note=OuterRef("pk")).order_by("-number")
    notes = (
        BoardNote.objects.for_practice(practice)
        .select_related("case", "created_by")
        .annotate(
            latest_number=Subquery(latest.values("number")[:1]),
            latest_state=Subquery(latest.values("state")[:1]),
            board_date=Subquery(latest.values("board_date")[:1]),
            has_signed=Exists(
                BoardNoteVersion.objects.filter(note=OuterRef("pk"), state=NoteState.SIGNED)
            ),
            has_outcome=Exists(BoardOutcome.objects.filter(note=OuterRef("pk"))),
        )
        .order_by(F("board_date").desc(nulls_last=True), "-pk")
    )
    wanted = request.GET.get("state", "")
    if wanted in (NoteState.DRAFT, NoteState.READY, NoteState.SIGNED):
        notes = notes.filter(latest_state=wanted)
    elif wanted == "outcome_pending":
        notes = notes.filter(has_signed=True, has_outcome=False)
    return render(request, "checklist/note_list.html", {"notes": notes[:200], "wanted": wanted})


@practice_required(role=Membership.PHYSICIAN)
def note_create(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    initial = {"registering_physician": user_display(request.user)}  # type: ignore[arg-type]
    form = forms.NoteForm(request.POST or None, initial=initial, language=get_language())
    if request.method == "POST" and form.is_valid():
        version = services.note_create(case=case, data=form.cleaned_data, acting_user=request.user)
        return redirect("note_detail", pk=version.note_id)
    return render(request, "checklist/note_form.html", {"form": form, "case": case})


@practice_required(role=Membership.PHYSICIAN)
def note_edit(request: HttpRequest, pk: int) -> HttpResponse:
    note = _get_note_for_user(request, pk)
    version = _version(note)
    if version.state == NoteState.SIGNED:
        messages.error(request, _("A signed version is never changed; amend it instead."))
        return redirect("note_detail", pk=note.pk)
    form = forms.NoteForm(request.POST or None, instance=version, language=get_language())
    if request.method == "POST" and form.is_valid():
        try:
            services.note_update(
                version=version,
                data=form.cleaned_data,
                expected_revision=_int(request.POST.get("revision"), -1),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("note_detail", pk=note.pk)
    return render(
        request,
        "checklist/note_form.html",
        {"form": form, "case": note.case, "note": note, "version": version},
    )


@practice_required()
def note_detail(request: HttpRequest, pk: int) -> HttpResponse:
    note = _get_note_for_user(request, pk)
    number = request.GET.get("v")
    version = _version(note, _int(number, limit=32767))
    snapshot = notes.snapshot_for(version, get_language())
    versions = list(note.versions.select_related("signed_by").order_by("number"))
    previous = next((v for v in versions if v.number == version.number - 1), None)
    changes = notes.diff(notes.snapshot_for(previous, get_language()), snapshot) if previous else []
    audit.record_access(
        request,
        audit.NOTE_VIEWED,
        practice_id=note.practice_id,
        table="checklist_boardnoteversion",
        case_id=note.case_id,
        row_id=version.pk,
        detail={"label": note.case.label, "version": version.number},
    )
    return render(
        request,
        "checklist/note_detail.html",
        {
            "note": note,
            "version": version,
            "s": snapshot,
            "versions": versions,
            "previous": previous,
            "changes": changes,
            "missing": notes.missing_for_signing(version)
            if version.state != NoteState.SIGNED
            else [],
            "verified": notes.verify(version) if version.state == NoteState.SIGNED else None,
            "outcomes": note.outcomes.select_related("recorded_by").order_by("-number"),
            "amend_form": forms.AmendForm(),
            "is_latest": version.number == versions[-1].number,
            "deviation_labels": dict(_deviation_choices()),
        },
    )


def _deviation_choices() -> list[tuple[str, str]]:
    return [(c.code, c.label(get_language())) for c in Code.objects.of("mii:therapieabweichung")]


def _note_action(
    request: HttpRequest, pk: int, action: Callable[[BoardNoteVersion], Any], done: str
) -> HttpResponse:
    note = _get_note_for_user(request, pk)
    try:
        action(_version(note))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done)
    return redirect("note_detail", pk=note.pk)


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def note_ready(request: HttpRequest, pk: int) -> HttpResponse:
    return _note_action(
        request, pk, lambda v: services.note_mark_ready(version=v), _("The note is ready.")
    )


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def note_sign(request: HttpRequest, pk: int) -> HttpResponse:
    return _note_action(
        request,
        pk,
        lambda v: services.note_sign(
            version=v,
            acting_membership=request.membership,  # type: ignore[attr-defined]
            language=get_language(),
            expected_revision=_int(request.POST.get("revision"), -1),
            expected_case_version=_int(request.POST.get("case_version"), -1),
        ),
        _("The note is signed."),
    )


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def note_amend(request: HttpRequest, pk: int) -> HttpResponse:
    note = _get_note_for_user(request, pk)
    form = forms.AmendForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the reason for the amendment."))
        return redirect("note_detail", pk=note.pk)
    try:
        services.note_amend(note=note, reason=form.cleaned_data["reason"], acting_user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("note_detail", pk=note.pk)
    return redirect("note_edit", pk=note.pk)


def _export_version(
    request: HttpRequest, pk: int, number: int, *, op: str, fmt: str
) -> tuple[BoardNote, BoardNoteVersion, dict[str, Any]]:
    """The note version to print or export, with the access event that says so."""
    note = _get_note_for_user(request, pk)
    version = _version(note, number)
    audit.record_access(
        request,
        op,
        practice_id=note.practice_id,
        table="checklist_boardnoteversion",
        case_id=note.case_id,
        row_id=version.pk,
        detail={"label": note.case.label, "version": version.number, "format": fmt},
    )
    return note, version, notes.snapshot_for(version, get_language())


@practice_required()
def note_print(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    note, version, snapshot = _export_version(
        request, pk, number, op=audit.NOTE_PRINTED, fmt="print"
    )
    return render(
        request, "checklist/note_print.html", {"s": snapshot, "version": version, "note": note}
    )


@practice_required()
def note_pdf(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    note, version, snapshot = _export_version(request, pk, number, op=audit.EXPORTED, fmt="pdf")
    pdf = notes.render_pdf(snapshot, version, base_url=request.build_absolute_uri("/"))
    response = HttpResponse(pdf, content_type="application/pdf")
    filename = f"board-note-{slugify(note.case.label) or note.case_id}-v{version.number}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@practice_required()
def note_text(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    _note, version, snapshot = _export_version(
        request, pk, number, op=audit.EXPORTED, fmt="markdown"
    )
    return HttpResponse(
        notes.render_text(snapshot, version), content_type="text/markdown; charset=utf-8"
    )


@practice_required(role=Membership.PHYSICIAN)
def outcome_create(request: HttpRequest, pk: int) -> HttpResponse:
    note = _get_note_for_user(request, pk)
    form = forms.OutcomeForm(request.POST or None, language=get_language())
    if request.method == "POST" and form.is_valid():
        try:
            services.outcome_record(
                note=note,
                held_on=form.cleaned_data["held_on"],
                attendees=form.cleaned_data["attendees"],
                measures=form.measures(),
                reason=form.cleaned_data["reason"],
                acting_user=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("The outcome is recorded."))
            return redirect("note_detail", pk=note.pk)
    return render(request, "checklist/outcome_form.html", {"form": form, "note": note})


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def case_immune_not_assessed(request: HttpRequest, pk: int) -> HttpResponse:
    case = _get_case_for_user(request, pk)
    try:
        services.case_set_immune_not_assessed(
            case=case,
            value=request.POST.get("value") == "on",
            acting_user=request.user,
            expected_version=_expected_version(request),
        )
    except services.StaleVersion as error:
        return _stale(request, error, {})
    return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + "#immune")


# --- audit browsing ---------------------------------------------------------------------------

AUDIT_PAGE = 50
CSV_COLUMNS = [
    "practice_id",
    "seq",
    "ts",
    "kind",
    "table_name",
    "op",
    "row_id",
    "case_id",
    "actor_id",
    "actor_name",
    "path",
    "request_id",
    "old_values",
    "new_values",
    "detail",
    "hash",
]


def _audit_filters(request: HttpRequest, practice_id: int) -> tuple[Any, dict[str, str]]:
    params = {
        k: request.GET.get(k, "").strip()
        for k in ("user", "case", "kind", "table", "date_from", "date_to")
    }
    events = AuditEvent.objects.filter(practice_id=practice_id)
    if _int(params["user"]) is not None:
        events = events.filter(actor_id=_int(params["user"]))
    if params["case"]:
        case = (
            Case.objects.for_practice(practice_id)
            .filter(Q(label=params["case"]) | Q(pk=_int(params["case"], 0)))
            .first()
        )
        events = events.filter(case_id=case.pk if case else -1)
    if params["kind"] == "change":
        events = events.filter(kind="change")
    elif params["kind"] == "access":
        events = events.filter(kind="access").exclude(op__in=audit.LOGIN_OPS)
    elif params["kind"] == "login":
        events = events.filter(kind="access", op__in=audit.LOGIN_OPS)
    if params["table"]:
        events = events.filter(table_name=params["table"])
    for key, lookup in (("date_from", "ts__date__gte"), ("date_to", "ts__date__lte")):
        day = parse_date(params[key]) if params[key] else None
        if day:
            events = events.filter(**{lookup: day})
    return events, params


def _event_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    by_table = audit._models_by_table()
    # One more query, only when a page shows rows whose fields hold code-list codes.
    coded_tables = {table for table, _field in audit.CODE_LIST_FIELDS}
    codes = (
        audit.code_list_labels(get_language())
        if any(e.table_name in coded_tables for e in events)
        else {}
    )
    labels = dict(
        Case.objects.filter(pk__in={e.case_id for e in events if e.case_id}).values_list(
            "pk", "label"
        )
    )
    return [
        {
            "event": e,
            "what": audit.ACCESS_LABELS.get(e.op, e.op)
            if e.kind == "access"
            else audit.CHANGE_LABELS.get(e.op, e.op),
            "table": audit.table_label(e.table_name, by_table) if e.table_name else "",
            "changes": audit.field_changes(e, by_table, codes) if e.kind == "change" else [],
            "case_label": labels.get(e.case_id) if e.case_id else None,
        }
        for e in events
    ]


def _keyset(events: Any, request: HttpRequest) -> tuple[list[AuditEvent], int | None]:
    before = request.GET.get("before", "")
    if _int(before) is not None:
        events = events.filter(seq__lt=_int(before))
    page = list(events.order_by("-seq")[: AUDIT_PAGE + 1])
    next_before = page[AUDIT_PAGE - 1].seq if len(page) > AUDIT_PAGE else None
    return page[:AUDIT_PAGE], next_before


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_trail(request: HttpRequest) -> HttpResponse:
    practice = request.practice  # type: ignore[attr-defined]
    events, params = _audit_filters(request, practice.pk)
    page, next_before = _keyset(events, request)
    query = {k: v for k, v in params.items() if v}
    users = (
        Membership.objects.for_practice(practice).select_related("user").order_by("user__username")
    )
    return render(
        request,
        "checklist/audit_trail.html",
        {
            "rows": _event_rows(page),
            "params": params,
            "next_query": urlencode({**query, "before": next_before}) if next_before else "",
            "first_query": urlencode(query) if request.GET.get("before") else "",
            "export_query": urlencode(query),
            "users": users,
            "tables": sorted(
                (
                    (t, str(m._meta.verbose_name))
                    for t, m in audit._models_by_table().items()
                    if t != "checklist_auditevent" and t != "checklist_code"
                ),
                key=lambda pair: pair[1],
            ),
        },
    )


@practice_required()
def case_history(request: HttpRequest, pk: int) -> HttpResponse:
    """The case's story: who created, changed, viewed, exported, signed what, and when."""
    case = _get_case_for_user(request, pk)
    events = AuditEvent.objects.filter(practice_id=case.practice_id, case_id=case.pk)
    page, next_before = _keyset(events, request)
    return render(
        request,
        "checklist/case_history.html",
        {
            "case": case,
            "rows": _event_rows(page),
            "next_query": urlencode({"before": next_before}) if next_before else "",
            "first_query": "?" if request.GET.get("before") else "",
        },
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered trail as CSV, streamed from a server-side cursor: the download starts at
    once and memory stays flat however many rows there are."""
    practice = request.practice  # type: ignore[attr-defined]
    events, params = _audit_filters(request, practice.pk)
    audit.record_access(
        request,
        audit.EXPORTED,
        practice_id=practice.pk,
        table="checklist_auditevent",
        detail={"format": "csv", "filters": {k: v for k, v in params.items() if v}},
    )
    # PostgreSQL writes the CSV itself (COPY ... TO STDOUT), chunk by chunk: no row objects in
    # Python, so a million rows stream at copy speed in constant memory.
    sql, params = events.order_by("seq").values_list(*CSV_COLUMNS).query.sql_with_params()

    def stream() -> Any:
        with connection.cursor() as cursor:
            copy_sql = f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)"
            with cursor.cursor.copy(copy_sql, params) as copy:  # type: ignore[union-attr]
                for chunk in copy:
                    yield bytes(chunk)

    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{practice.pk}.csv"'
    return response


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_reports(request: HttpRequest) -> HttpResponse:
    practice = request.practice  # type: ignore[attr-defined]
    today = timezone.localdate()
    days = min(max(0, _int(request.GET.get("days"), 7) or 0), 3650)
    start = parse_date(request.GET.get("from", "")) or today - timedelta(days=30)
    end = parse_date(request.GET.get("to", "")) or today
    incomplete = (
        Case.objects.for_practice(practice)
        .with_completeness()
        .filter(complete=False)
        .order_by("label")[:200]
    )
    latest = BoardNoteVersion.objects.filter(note=OuterRef("note")).order_by("-number")
    ready_unsigned = (
        BoardNoteVersion.objects.filter(
            practice=practice,
            state=NoteState.READY,
            ready_at__lt=timezone.now() - timedelta(days=days),
        )
        .filter(number=Subquery(latest.values("number")[:1]))
        .select_related("note__case")
        .order_by("ready_at")
    )
    signed_without_outcome = (
        BoardNoteVersion.objects.filter(
            practice=practice, state=NoteState.SIGNED, board_date__lt=today
        )
        .filter(number=Subquery(latest.values("number")[:1]))
        .exclude(Exists(BoardOutcome.objects.filter(note=OuterRef("note"))))
        .select_related("note__case")
        .order_by("board_date")
    )
    period = AuditEvent.objects.filter(
        practice_id=practice.pk, ts__date__gte=start, ts__date__lte=end
    )
    activity = (
        period.values("actor_id", "actor_name")
        .annotate(
            changes=Count("seq", filter=Q(kind="change")),
            accesses=Count("seq", filter=Q(kind="access")),
        )
        .order_by("actor_name")
    )
    security = period.filter(op__in=[audit.LOGIN_FAILURE, audit.PERMISSION_DENIED]).order_by(
        "-seq"
    )[:200]
    return render(
        request,
        "checklist/audit_reports.html",
        {
            "days": days,
            "start": start,
            "end": end,
            "incomplete": incomplete,
            "ready_unsigned": ready_unsigned,
            "signed_without_outcome": signed_without_outcome,
            "activity": activity,
            "security": security,
        },
    )


@practice_required(role=Membership.PRACTICE_ADMIN)
def audit_chain(request: HttpRequest) -> HttpResponse:
    practice = request.practice  # type: ignore[attr-defined]
    if request.method == "POST":
        services.audit_verify_practice(practice_id=practice.pk, ran_by=request.user.get_username())
        return redirect("audit_chain")
    runs = AuditVerification.objects.filter(chain=practice.pk).order_by("-ran_at")[:10]
    return render(request, "checklist/audit_chain.html", {"runs": runs})
