"""The case record: list, header, factor statuses, the case page and the case history.

The case's own forms work in place on the case page like its rows (`case_sections`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, forms, fragments, services
from checklist.access import PracticeRequest, get_case_for_user, practice_required
from checklist.models import (
    COMMON_BIOMARKERS,
    AuditEvent,
    Case,
    Membership,
    Situation,
    Tumour,
)
from checklist.record import RecordRows
from checklist.views.audit import event_rows, keyset_page
from checklist.views.case_sections import (
    InlineCaseForm,
    inline_context,
    section_response,
    stale_section,
)
from checklist.views.common import (
    already_saved_message,
    expected_version,
    query_int,
    stale_response,
    valid,
)

PAGE_SIZE = 50


SORTS = {
    "label": (("label", "pk"), False),
    "-updated": (("updated_at", "pk"), True),
    "-created": (("created_at", "pk"), True),
}


def _case_list_queryset(
    request: PracticeRequest, query: dict[str, Any]
) -> tuple[Any, dict[str, str]]:
    params = {k: query[k].strip() for k in ("q", "situation", "tumour", "complete")}
    cases = Case.objects.for_practice(request.practice).for_list().with_completeness()
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
def case_list(request: PracticeRequest) -> HttpResponse:
    """Keyset pagination: the cursor is the last row's sort value and id, so a deep page costs
    what the first costs."""
    query = valid(forms.CaseListQuery(request.GET)).cleaned_data
    cases, params = _case_list_queryset(request, query)
    sort = query["sort"] or "label"
    (key, tiebreak), descending = SORTS[sort]
    total = cases.count()
    after = query["after"]
    if after:
        raw, _sep, last_pk = after.rpartition("|")
        last = query_int(last_pk, 0)
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
        Tumour.objects.for_practice(request.practice)
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
def case_create(request: PracticeRequest) -> HttpResponse:
    form = forms.CaseForm(request.POST or None, practice=request.practice)
    if request.method == "POST":
        token = request.POST.get("submission_token")
        done = services.submission_applied(token=token, user=request.user)
        if done is not None:  # before the form, whose label check now finds the case
            messages.info(request, already_saved_message(done))
            return redirect("case_detail", pk=done.submission.object_id)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.case_create(
                practice=request.practice,
                data=form.cleaned_data,
                acting_user=request.user,
                token=request.POST.get("submission_token"),
            )
        except services.AlreadySaved as error:
            messages.info(request, already_saved_message(error))
            return redirect("case_detail", pk=error.submission.object_id)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("case_detail", pk=case.pk)
    return render(request, "checklist/case_form.html", {"form": form})


@practice_required(role=Membership.PHYSICIAN)
def case_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    form = forms.CaseForm(request.POST or None, instance=case, practice=request.practice)
    if request.htmx:
        form.auto_id = "id_case_%s"
    return _save_case_form(
        request,
        case,
        form,
        "checklist/case_form.html",
        inline=InlineCaseForm(
            "header", "checklist/_case_edit_form.html", "header-form", "case-label"
        ),
    )


@practice_required(role=Membership.PHYSICIAN)
def case_metastasis_status(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    form = forms.MetastasisStatusForm(request.POST or None, instance=case)
    return _save_case_form(
        request,
        case,
        form,
        "checklist/case_metastasis_status.html",
        inline=InlineCaseForm(
            "metastases",
            "checklist/_metastasis_status_form.html",
            "metastasis-status-form",
            "metastasis-status",
        ),
    )


@practice_required(role=Membership.PHYSICIAN)
def case_prior_therapy(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    form = forms.PriorTherapyForm(
        request.POST or None, initial={"no_prior_therapy": case.no_prior_therapy}
    )
    if request.method == "POST" and form.is_valid():
        data = {
            "no_prior_therapy": form.cleaned_data["no_prior_therapy"],
            "prior_therapy_stated_on": timezone.localdate(),
        }
        try:
            case = services.case_update(
                case=case,
                data=data,
                acting_user=request.user,
                expected_version=expected_version(request),
            )
        except services.StaleVersion as error:
            if request.htmx:
                return stale_section(request, error, {}, "therapy")
            return stale_response(request, error, {"form": form, "title": _("Prior therapy")})
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            if request.htmx:
                return section_response(
                    request,
                    case,
                    "therapy",
                    oob=True,
                    old_version=expected_version(request),
                    focus="prior-therapy-form",
                )
        if request.htmx:
            return section_response(request, case, "therapy", status=422)
        return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + "#therapy")
    return redirect("case_detail", pk=case.pk)


def _save_case_form(
    request: PracticeRequest,
    case: Case,
    form: Any,
    template: str,
    inline: InlineCaseForm | None = None,
) -> HttpResponse:
    """A form of the case itself. With `inline` an htmx request is answered with its section,
    the form in it, as the row forms are."""
    context: dict[str, Any] = {"form": form, "case": case}
    if inline is not None:
        context.update({"anchor": inline.anchor, "form_id": inline.form_id})
    htmx = inline is not None and bool(request.htmx)
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            updated = services.case_update(
                case=case,
                data=data,
                acting_user=request.user,
                expected_version=expected_version(request),
            )
        except services.StaleVersion as error:
            if inline is not None:
                return stale_section(request, error, context, inline.anchor, inline.template)
            return stale_response(request, error, context)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Saved."))
            if htmx and inline is not None:
                # The tumour section says "cancer of unknown primary" from the case itself.
                also = ["tumours"] if "unknown_primary" in form.changed_data else []
                return section_response(
                    request,
                    updated,
                    inline.anchor,
                    oob=True,
                    old_version=expected_version(request),
                    focus=inline.saved_focus,
                    also=also,
                )
            return redirect("case_detail", pk=case.pk)
    if htmx and inline is not None:
        if request.method == "POST":
            # The form's instance took the posted values: the section shows the case as stored,
            # and the form keeps the version it was opened at.
            case = get_case_for_user(request, case.pk)
            context["form_version"] = expected_version(request)
        status = 422 if request.method == "POST" else 200
        return section_response(
            request, case, inline.anchor, status=status, **inline_context(context, inline.template)
        )
    return render(request, template, context)


@practice_required()
def case_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    # The header names who changed the case last: read with it, as the body renders no query.
    case = get_case_for_user(request, pk, Case.objects.select_related("updated_by"))
    rows = RecordRows.read(case)
    audit.record_access(
        request,
        audit.CASE_VIEWED,
        practice_id=case.practice_id,
        table="checklist_case",
        row_id=case.pk,
        case_id=case.pk,
        detail={"label": case.label},
    )
    physician = request.membership.is_physician

    def context() -> dict[str, Any]:
        language = get_language()
        record = rows.record()
        return {
            "case": case,
            "record": record,
            "summary": record.summary,
            "gaps": record.gaps,
            "timeline": record.timeline(timezone.localdate(), language),
            "site_labels": record.site_labels(language),
            "code_labels": record.code_labels(language),
            "markers": COMMON_BIOMARKERS,
            "physician": physician,
        }

    # The body is the record's: the same rows, role, language and day render the same HTML.
    record_body = fragments.body(
        request, "checklist/_case_record.html", (rows.fingerprint, physician), context
    )
    return render(request, "checklist/case_detail.html", {"case": case, "record_body": record_body})


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def case_immune_not_assessed(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    try:
        case = services.case_set_immune_not_assessed(
            case=case,
            value=request.POST.get("value") == "on",
            acting_user=request.user,
            expected_version=expected_version(request),
        )
    except services.StaleVersion as error:
        if request.htmx:
            return stale_section(request, error, {}, "immune")
        return stale_response(request, error, {})
    if request.htmx:
        return section_response(
            request,
            case,
            "immune",
            oob=True,
            old_version=expected_version(request),
            focus="immune-not-assessed-form",
        )
    return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + "#immune")


@practice_required()
def case_history(request: PracticeRequest, pk: int) -> HttpResponse:
    """The case's story: who created, changed, viewed, exported, signed what, and when."""
    case = get_case_for_user(request, pk)
    events = AuditEvent.objects.filter(practice_id=case.practice_id, case_id=case.pk)
    params = valid(forms.HistoryQuery(request.GET)).cleaned_data
    before, with_views = params["before"], params["views"]
    if not with_views:
        events = events.exclude(kind="access", op=audit.CASE_VIEWED)
    page, next_before = keyset_page(events, before)
    keep = {"views": "1"} if with_views else {}
    return render(
        request,
        "checklist/case_history.html",
        {
            "case": case,
            "rows": event_rows(page),
            "with_views": with_views,
            "next_query": urlencode({**keep, "before": next_before}) if next_before else "",
            "first_query": urlencode(keep) if before is not None else None,
        },
    )
