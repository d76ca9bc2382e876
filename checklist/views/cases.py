"""The case record: list, header, factor statuses, rows (create, edit, delete), OncoTree
type-ahead and the case history.

Rows and the case's own forms work in place on the case page: the same URLs answer a full page
to a normal request and the page's section (`templates/checklist/_case_<section>.html`) to an
htmx request, the form in the section; after a save the section comes back with the row and,
out of band, the factor summary, the timeline and the new case version (`_section`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Length
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.decorators.http import require_POST

from checklist import audit, forms, services
from checklist.access import PracticeRequest, get_case_for_user, practice_required
from checklist.models import (
    COMMON_BIOMARKERS,
    AdverseEvent,
    AuditEvent,
    Biomarker,
    Case,
    CaseRow,
    Code,
    Comorbidity,
    ImmuneAdverseEvent,
    ImmuneFinding,
    Medication,
    Membership,
    Metastasis,
    OrganFunction,
    PerformanceStatus,
    Situation,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from checklist.record import CaseRecord, catalogue_categories
from checklist.views.audit import event_rows, keyset_page
from checklist.views.common import (
    already_saved_message,
    duplicate_question,
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


@dataclass(frozen=True)
class InlineCaseForm:
    """A form of the case itself shown in place: its section, its template, the form's id and
    the element that takes the focus after a save."""

    anchor: str
    template: str
    form_id: str
    saved_focus: str


def _row_kind(kind: str) -> RowKind:
    if kind not in ROW_KINDS:
        raise Http404
    return ROW_KINDS[kind]


def _row_form(
    request: PracticeRequest,
    case: Case,
    kind: str,
    instance: Any = None,
    *,
    bound: bool = True,
    line: Any = None,
) -> Any:
    """The form of one row kind: bound to the POST unless `bound` is false (a fresh form after
    "save and add another"). Inline forms get ids of their own, since several can be open on
    the case page at once; the tumour form keeps the ids its type-ahead refers to."""
    row_kind = _row_kind(kind)
    extra: dict[str, Any] = {}
    if row_kind.form is forms.TherapyLineForm:
        extra["categories"] = catalogue_categories(case.practice_id)
    if kind == "event" and instance is None and (line or request.method == "GET"):
        extra["initial"] = {"line": line or request.GET.get("line")}
    if request.htmx and kind != "tumour":
        extra["auto_id"] = f"id_{kind}_%s"
    return row_kind.form(
        (request.POST or None) if bound else None,
        instance=instance,
        case=case,
        language=get_language(),
        **extra,
    )


@practice_required(role=Membership.PHYSICIAN)
def case_row_create(request: PracticeRequest, pk: int, kind: str) -> HttpResponse:
    case = get_case_for_user(request, pk)
    return _save_row(request, case, kind, _row_form(request, case, kind))


@practice_required(role=Membership.PHYSICIAN)
def case_row_edit(request: PracticeRequest, pk: int, kind: str, row_pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    row = get_object_or_404(_row_kind(kind).model.objects.filter(case=case), pk=row_pk)
    return _save_row(request, case, kind, _row_form(request, case, kind, row))


def _save_row(request: PracticeRequest, case: Case, kind: str, form: Any) -> HttpResponse:
    row_kind = _row_kind(kind)
    context = {
        "form": form,
        "case": case,
        "kind": kind,
        "title": row_kind.title,
        "markers": COMMON_BIOMARKERS,
        "anchor": row_kind.anchor,
        "form_action": _row_action(case, kind, form.instance),
    }
    if request.method == "POST" and form.instance.pk is None:
        token = request.POST.get("submission_token")
        done = services.submission_applied(token=token, user=request.user)
        if done is not None:
            return _row_already_saved(request, case, kind, done)
    if request.method == "POST" and form.is_valid():
        try:
            row = services.case_row_save(
                case=case,
                row=form.save(commit=False),
                acting_user=request.user,
                expected_version=expected_version(request),
                token=request.POST.get("submission_token"),
                confirm_duplicate=request.POST.get("confirm_duplicate") == "on",
            )
        except services.AlreadySaved as error:
            return _row_already_saved(request, case, kind, error)
        except services.PossibleDuplicate as error:
            url = reverse("case_detail", kwargs={"pk": case.pk})
            context["duplicate"] = duplicate_question(
                error, row_kind.title, f"{url}#{kind}-{error.existing.pk}"
            )
        except services.StaleVersion as error:
            return _stale(request, error, context, row_kind.anchor)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            for warning in form.warnings:
                messages.warning(request, warning)
            messages.success(request, _saved_message(form))
            if row.case.metastasis_status != case.metastasis_status:
                messages.info(
                    request,
                    _("Metastasis status set to “%(status)s”.")
                    % {"status": row.case.get_metastasis_status_display()},
                )
            return _row_saved(request, kind, row)
    if request.method == "POST":  # sent back: the form keeps the version it was opened at
        context["form_version"] = expected_version(request)
    if request.htmx:
        return _row_form_section(request, case, kind, context)
    return render(request, "checklist/case_row_form.html", context)


def _row_already_saved(
    request: PracticeRequest, case: Case, kind: str, error: services.AlreadySaved
) -> HttpResponse:
    """A second POST of a create form: nothing was saved again; the case page (or, inline, the
    section) shows the row the first POST created."""
    messages.info(request, already_saved_message(error))
    anchor = ROW_KINDS[kind].anchor
    row_id = f"{kind}-{error.submission.object_id}"
    if request.htmx:
        fresh = get_case_for_user(request, case.pk)
        return _section(request, fresh, anchor, oob=True, focus=row_id)
    return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_id}")


def _saved_message(form: forms.RowForm) -> str:
    """Names the numbers of the saved row as stored, with their units ("Lymphocytes 0.9 ×
    10⁹/L saved."), so a number read wrongly shows at once; "Saved." for rows without."""
    values = form.saved_values()
    if not values:
        return _("Saved.")
    return _("%(values)s saved.") % {"values": ", ".join(values)}


def _row_action(case: Case, kind: str, instance: Any) -> str:
    if instance is not None and instance.pk:
        return reverse("case_row_edit", kwargs={"pk": case.pk, "kind": kind, "row_pk": instance.pk})
    return reverse("case_row_create", kwargs={"pk": case.pk, "kind": kind})


def _inline(context: dict[str, Any], template: str = "checklist/_row_form.html") -> dict[str, Any]:
    """The context of a form shown in place on the case page: in its section's slot, an
    adverse event's in the card of its therapy line."""
    anchor = context["anchor"]
    form = context["form"]
    slot, line = anchor, None
    if context.get("kind") == "event":
        line = query_int(str(form["line"].value() or ""))
        if line is not None:
            slot = f"line-{line}"
    return {
        **context,
        "inline_template": template,
        "inline_slot": slot,
        "inline_line": line,
        "focus": context.get("form_id") or f"{context['kind']}-form",
    }


def _section(
    request: PracticeRequest,
    section_case: Case,
    section: str,
    /,
    *,
    status: int = 200,
    oob: bool = False,
    old_version: int | None = None,
    also: list[str] | None = None,
    **extra: Any,
) -> HttpResponse:
    """One section of the case page, for htmx. After a change (`oob`) the response also
    carries the factor summary, the timeline and the record version, and moves every other
    form on the page that was at `old_version` (the version this user's own save started
    from) to the new one, so the user's own save never makes them stale; a form opened at
    another version stays at it and meets a real conflict as before."""
    record = CaseRecord.load(section_case)
    language = get_language()
    context: dict[str, Any] = {
        "inline_slot": section,
        "section_messages": list(messages.get_messages(request)),
        **extra,
        "case": section_case,
        "anchor": section,
        "record": record,
        "site_labels": partial(record.site_labels, language),
        "code_labels": partial(record.code_labels, language),
        "markers": COMMON_BIOMARKERS,
        "section_template": f"checklist/_case_{section}.html",
        "oob": oob,
        "old_version": old_version,
        "also_templates": [f"checklist/_case_{name}.html" for name in also or []],
    }
    if context.get("inline_line") not in {line.pk for line in record.lines}:
        if context.get("inline_line") is not None:  # not a line of this case: the section's slot
            context["inline_slot"] = section
        context["inline_line"] = None
    if oob:
        context["summary"] = record.summary
        context["timeline"] = record.timeline(timezone.localdate(), language)
    return render(request, "checklist/_case_section.html", context, status=status)


def _row_form_section(
    request: PracticeRequest, case: Case, kind: str, context: dict[str, Any]
) -> HttpResponse:
    """An inline row form in its section: opened (200) or sent back with its errors and the
    input as typed (422)."""
    status = 422 if request.method == "POST" else 200
    return _section(request, case, context["anchor"], status=status, **_inline(context))


def _row_saved(request: PracticeRequest, kind: str, row: Any) -> HttpResponse:
    """After a row was saved: the case page, or a new empty form ("save and add another");
    for htmx the section with the new row to focus, or with the new form."""
    row_kind = ROW_KINDS[kind]
    case = row.case  # the locked instance: the version and editor this save produced
    another = bool(request.POST.get("another"))
    line = row.line_id if kind == "event" else None
    if not request.htmx:
        if another:
            url = reverse("case_row_create", kwargs={"pk": case.pk, "kind": kind})
            return redirect(url + (f"?line={line}" if line else ""))
        return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_kind.anchor}")
    extra: dict[str, Any] = {"focus": f"{kind}-{row.pk}"}
    if another:
        form = _row_form(request, case, kind, bound=False, line=line)
        extra = _inline(
            {
                "form": form,
                "case": case,
                "kind": kind,
                "title": row_kind.title,
                "anchor": row_kind.anchor,
                "form_action": _row_action(case, kind, None),
            }
        )
    return _section(
        request, case, row_kind.anchor, oob=True, old_version=expected_version(request), **extra
    )


def _stale(
    request: PracticeRequest,
    error: services.StaleVersion,
    context: dict[str, Any],
    anchor: str,
    template: str = "checklist/_row_form.html",
) -> HttpResponse:
    """Another user changed the case since the form was opened: nothing was saved. Inline,
    the section shows the changes and the form again with the input kept, at the current
    version, to be saved again."""
    if not request.htmx:
        return stale_response(request, error, context)
    changes = audit.case_changes_since(error.case, error.expected)
    extra = _inline({**context, "anchor": anchor}, template) if context.get("form") else {}
    extra.update({"stale": True, "stale_changes": changes, "focus": "stale-alert"})
    extra.pop("form_version", None)  # saved again, it is checked against the current version
    return _section(request, error.case, anchor, status=409, oob=True, **extra)


@practice_required(role=Membership.PHYSICIAN)
def case_row_delete(request: PracticeRequest, pk: int, kind: str, row_pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    row_kind = _row_kind(kind)
    row = get_object_or_404(row_kind.model.objects.filter(case=case), pk=row_pk)
    context = {"case": case, "row": row, "kind": kind, "title": row_kind.title}
    if request.method == "POST":
        try:
            services.case_row_delete(
                case=case,
                row=row,
                acting_user=request.user,
                expected_version=expected_version(request),
            )
        except services.StaleVersion as error:
            return stale_response(request, error, context)
        messages.success(request, _("Deleted."))
        return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_kind.anchor}")
    return render(request, "checklist/case_row_delete.html", context)


@practice_required()
def oncotree_search(request: PracticeRequest) -> HttpResponse:
    """Type-ahead over OncoTree names and codes; tissues are shown for context, not offered."""
    params = valid(forms.OncotreeQuery(request.GET)).cleaned_data
    query = (params["oncotree"] or params["q"]).strip()
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
                return _stale(request, error, {}, "therapy")
            return stale_response(request, error, {"form": form, "title": _("Prior therapy")})
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            if request.htmx:
                return _section(
                    request,
                    case,
                    "therapy",
                    oob=True,
                    old_version=expected_version(request),
                    focus="prior-therapy-form",
                )
        if request.htmx:
            return _section(request, case, "therapy", status=422)
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
                return _stale(request, error, context, inline.anchor, inline.template)
            return stale_response(request, error, context)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Saved."))
            if htmx and inline is not None:
                # The tumour section says "cancer of unknown primary" from the case itself.
                also = ["tumours"] if "unknown_primary" in form.changed_data else []
                return _section(
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
        return _section(
            request, case, inline.anchor, status=status, **_inline(context, inline.template)
        )
    return render(request, template, context)


@practice_required()
def case_detail(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
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
            return _stale(request, error, {}, "immune")
        return stale_response(request, error, {})
    if request.htmx:
        return _section(
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
