"""The case record's rows (create, edit, delete) and the OncoTree type-ahead.

The same URLs answer a full page to a normal request and the case page's section to an htmx
request (`case_sections`); without JavaScript the full-page forms work as before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.functions import Length
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from checklist import forms, services
from checklist.access import PracticeRequest, get_case_for_user, practice_required
from checklist.models import (
    COMMON_BIOMARKERS,
    AdverseEvent,
    Biomarker,
    Case,
    CaseRow,
    Code,
    Comorbidity,
    FamilyHistory,
    GenomicVariant,
    ImmuneFinding,
    Lifestyle,
    Medication,
    Membership,
    Metastasis,
    OrganFunction,
    PerformanceStatus,
    Prophylaxis,
    StagingRecord,
    TherapyLine,
    Tumour,
    Vaccination,
)
from checklist.record import catalogue_categories
from checklist.views.case_sections import inline_context, section_response, stale_section
from checklist.views.common import (
    already_saved_message,
    duplicate_question,
    expected_version,
    stale_response,
    valid,
)


@dataclass(frozen=True)
class RowKind:
    model: type[CaseRow]
    form: type[forms.RowForm]
    title: Any
    anchor: str


ROW_KINDS: dict[str, RowKind] = {
    "tumour": RowKind(Tumour, forms.TumourForm, gettext_lazy("Primary tumour"), "tumours"),
    "staging": RowKind(StagingRecord, forms.StagingForm, gettext_lazy("Staging record"), "staging"),
    "biomarker": RowKind(
        Biomarker, forms.BiomarkerForm, gettext_lazy("Biomarker result"), "biomarkers"
    ),
    "metastasis": RowKind(
        Metastasis, forms.MetastasisForm, gettext_lazy("Metastasis"), "metastases"
    ),
    "line": RowKind(TherapyLine, forms.TherapyLineForm, gettext_lazy("Therapy episode"), "therapy"),
    "event": RowKind(
        AdverseEvent, forms.AdverseEventForm, gettext_lazy("Adverse event"), "therapy"
    ),
    "performance": RowKind(
        PerformanceStatus,
        forms.PerformanceStatusForm,
        gettext_lazy("Performance status"),
        "performance",
    ),
    "immune": RowKind(
        ImmuneFinding, forms.ImmuneFindingForm, gettext_lazy("Immune-relevant findings"), "immune"
    ),
    "prophylaxis": RowKind(
        Prophylaxis,
        forms.ProphylaxisForm,
        gettext_lazy("Antiviral or antimicrobial prophylaxis"),
        "immune",
    ),
    "vaccination": RowKind(
        Vaccination, forms.VaccinationForm, gettext_lazy("Vaccination"), "immune"
    ),
    "comorbidity": RowKind(
        Comorbidity, forms.ComorbidityForm, gettext_lazy("Comorbidity"), "situation"
    ),
    "organ": RowKind(
        OrganFunction, forms.OrganFunctionForm, gettext_lazy("Organ function"), "situation"
    ),
    "medication": RowKind(
        Medication, forms.MedicationForm, gettext_lazy("Current medication"), "situation"
    ),
    # Lifestyle, family history, genomic findings.
    "lifestyle": RowKind(
        Lifestyle, forms.LifestyleForm, gettext_lazy("Smoking and alcohol"), "situation"
    ),
    "family": RowKind(
        FamilyHistory, forms.FamilyHistoryForm, gettext_lazy("Family history"), "family"
    ),
    "variant": RowKind(
        GenomicVariant, forms.GenomicVariantForm, gettext_lazy("Genomic finding"), "genomics"
    ),
}


def row_kind_of(kind: str) -> RowKind:
    if kind not in ROW_KINDS:
        raise Http404
    return ROW_KINDS[kind]


def row_form(
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
    row_kind = row_kind_of(kind)
    extra: dict[str, Any] = {}
    if row_kind.form is forms.TherapyLineForm:
        extra["categories"] = catalogue_categories(case.practice_id)
    if kind == "event" and instance is None and (line or request.method == "GET"):
        extra["initial"] = {"line": line or request.GET.get("line")}
        if request.GET.get("immune"):  # "add immune-related adverse event"
            extra["initial"]["immune_related"] = True
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
    return _save_row(request, case, kind, row_form(request, case, kind))


@practice_required(role=Membership.PHYSICIAN)
def case_row_edit(request: PracticeRequest, pk: int, kind: str, row_pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    row = get_object_or_404(row_kind_of(kind).model.objects.filter(case=case), pk=row_pk)
    return _save_row(request, case, kind, row_form(request, case, kind, row))


def _save_row(request: PracticeRequest, case: Case, kind: str, form: Any) -> HttpResponse:
    row_kind = row_kind_of(kind)
    context = {
        "form": form,
        "case": case,
        "kind": kind,
        "title": row_kind.title,
        "markers": COMMON_BIOMARKERS,
        "anchor": row_kind.anchor,
        "form_action": row_action(case, kind, form.instance),
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
            return stale_section(request, error, context, row_kind.anchor)
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
        return section_response(request, fresh, anchor, oob=True, focus=row_id)
    return redirect(reverse("case_detail", kwargs={"pk": case.pk}) + f"#{row_id}")


def _saved_message(form: forms.RowForm) -> str:
    """Names the numbers of the saved row as stored, with their units ("Lymphocytes 0.9 ×
    10⁹/L saved."), so a number read wrongly shows at once; "Saved." for rows without."""
    values = form.saved_values()
    if not values:
        return _("Saved.")
    return _("%(values)s saved.") % {"values": ", ".join(values)}


def row_action(case: Case, kind: str, instance: Any) -> str:
    if instance is not None and instance.pk:
        return reverse("case_row_edit", kwargs={"pk": case.pk, "kind": kind, "row_pk": instance.pk})
    return reverse("case_row_create", kwargs={"pk": case.pk, "kind": kind})


def _row_form_section(
    request: PracticeRequest, case: Case, kind: str, context: dict[str, Any]
) -> HttpResponse:
    """An inline row form in its section: opened (200) or sent back with its errors and the
    input as typed (422)."""
    status = 422 if request.method == "POST" else 200
    return section_response(
        request, case, context["anchor"], status=status, **inline_context(context)
    )


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
        form = row_form(request, case, kind, bound=False, line=line)
        extra = inline_context(
            {
                "form": form,
                "case": case,
                "kind": kind,
                "title": row_kind.title,
                "anchor": row_kind.anchor,
                "form_action": row_action(case, kind, None),
            }
        )
    # An episode's or event's change shows in the immune section too (its immune-related
    # events, named with their episode).
    also = ["immune"] if kind in ("line", "event") else None
    return section_response(
        request,
        case,
        row_kind.anchor,
        oob=True,
        old_version=expected_version(request),
        also=also,
        **extra,
    )


@practice_required(role=Membership.PHYSICIAN)
def case_row_delete(request: PracticeRequest, pk: int, kind: str, row_pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    row_kind = row_kind_of(kind)
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
    query = params["oncotree"] or params["q"]
    if params["source"]:
        query = str(request.GET.get(params["source"], ""))[:200]
    query = query.strip()
    fill = params["target"] or "id_oncotree"
    if "(" in query:
        query = query.split("(")[0].strip()
    results: list[Code] = []
    if len(query) >= 2:
        results = list(
            Code.objects.filter(system="oncotree", selectable=True)
            .filter(Q(display__icontains=query) | Q(code__istartswith=query))
            .order_by(Length("display"), "display")[:15]
        )
    return render(
        request,
        "checklist/_oncotree_results.html",
        {"results": results, "query": query, "fill_target": fill},
    )
