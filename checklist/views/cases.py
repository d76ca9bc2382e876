"""The case record: list, header, factor statuses, rows (create, edit, delete), OncoTree
type-ahead and the case history."""

from __future__ import annotations

from dataclasses import dataclass
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
from checklist.views.common import expected_version, query_int, stale_response, valid

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


def _row_kind(kind: str) -> RowKind:
    if kind not in ROW_KINDS:
        raise Http404
    return ROW_KINDS[kind]


def _row_form(request: PracticeRequest, case: Case, kind: str, instance: Any = None) -> Any:
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
    }
    if request.method == "POST" and form.is_valid():
        try:
            services.case_row_save(
                case=case,
                row=form.save(commit=False),
                acting_user=request.user,
                expected_version=expected_version(request),
            )
        except services.StaleVersion as error:
            return stale_response(request, error, context)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            for warning in form.warnings:
                messages.warning(request, warning)
            messages.success(request, _("Saved."))
            return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_kind.anchor}")
    return render(request, "checklist/case_row_form.html", context)


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
    if request.method == "POST" and form.is_valid():
        try:
            case = services.case_create(
                practice=request.practice,
                data=form.cleaned_data,
                acting_user=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("case_detail", pk=case.pk)
    return render(request, "checklist/case_form.html", {"form": form})


@practice_required(role=Membership.PHYSICIAN)
def case_edit(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    form = forms.CaseForm(request.POST or None, instance=case, practice=request.practice)
    return _save_case_form(request, case, form, "checklist/case_form.html")


@practice_required(role=Membership.PHYSICIAN)
def case_metastasis_status(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    form = forms.MetastasisStatusForm(request.POST or None, instance=case)
    return _save_case_form(request, case, form, "checklist/case_metastasis_status.html")


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
            services.case_update(
                case=case,
                data=data,
                acting_user=request.user,
                expected_version=expected_version(request),
            )
        except services.StaleVersion as error:
            return stale_response(request, error, {"form": form, "title": _("Prior therapy")})
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + "#therapy")
    return redirect("case_detail", pk=case.pk)


def _save_case_form(request: PracticeRequest, case: Case, form: Any, template: str) -> HttpResponse:
    context = {"form": form, "case": case}
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            services.case_update(
                case=case,
                data=data,
                acting_user=request.user,
                expected_version=expected_version(request),
            )
        except services.StaleVersion as error:
            return stale_response(request, error, context)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("case_detail", pk=case.pk)
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
        services.case_set_immune_not_assessed(
            case=case,
            value=request.POST.get("value") == "on",
            acting_user=request.user,
            expected_version=expected_version(request),
        )
    except services.StaleVersion as error:
        return stale_response(request, error, {})
    return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + "#immune")


@practice_required()
def case_history(request: PracticeRequest, pk: int) -> HttpResponse:
    """The case's story: who created, changed, viewed, exported, signed what, and when."""
    case = get_case_for_user(request, pk)
    events = AuditEvent.objects.filter(practice_id=case.practice_id, case_id=case.pk)
    before = valid(forms.HistoryQuery(request.GET)).cleaned_data["before"]
    page, next_before = keyset_page(events, before)
    return render(
        request,
        "checklist/case_history.html",
        {
            "case": case,
            "rows": event_rows(page),
            "next_query": urlencode({"before": next_before}) if next_before else "",
            "first_query": "?" if before is not None else "",
        },
    )
