"""The per-case checklist: every category of the catalogue version, status and note per item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from checklist import audit, forms, fragments, rules, services
from checklist.access import PracticeRequest, get_case_for_user, practice_required
from checklist.models import (
    Case,
    CatalogueVersion,
    Category,
    Checklist,
    ChecklistItem,
    ItemStatus,
    Membership,
    display_name,
)
from checklist.record import RecordRows, category_text, version_diff
from checklist.views.common import valid


@dataclass
class _Reads:
    """What the checklist page reads: the record's rows, the checklist and the catalogue
    version it is worked under, the newest published version, the version's categories and
    the items. Their values are the key of the page body (`fragments`)."""

    case: Case
    rows: RecordRows
    checklist: Checklist | None
    version: CatalogueVersion
    newer: CatalogueVersion | None
    newer_diff: tuple[rules.DiffEntry, ...]
    categories: list[Category]
    items: list[ChecklistItem]

    @classmethod
    def read(cls, case: Case) -> _Reads:
        rows = RecordRows.read(case)
        checklist, version = Checklist.objects.worked_under(case)
        if version is None:
            raise Http404
        # Before its first save a checklist is worked under the newest version already.
        newest = (
            CatalogueVersion.objects.for_practice(case.practice_id).newest_published()
            if checklist
            else version
        )
        newer = newest if newest and newest.number > version.number else None
        items = list(checklist.items.select_related("set_by__account_profile")) if checklist else []
        return cls(
            case=case,
            rows=rows,
            checklist=checklist,
            version=version,
            newer=newer,
            newer_diff=version_diff(version, newer) if newer else (),
            categories=list(version.categories.order_by("position")),
            items=items,
        )

    def key(self) -> tuple[Any, ...]:
        state = fragments.instance_state
        return (
            self.rows.fingerprint,
            state(self.checklist),
            state(self.version),
            state(self.newer),
            self.newer_diff,
            [state(c) for c in self.categories],
            [state(i) for i in self.items],
        )


def _checklist_context(reads: _Reads, physician: bool) -> dict[str, Any]:
    language = get_language()
    record = reads.rows.record()
    version = reads.version
    categories = {c.code: c for c in reads.categories}
    items = {i.category_id: i for i in reads.items}
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
    return {
        "case": reads.case,
        "record": record,
        "view": view,
        "rows": rows,
        "version": version,
        "checklist": reads.checklist,
        "newer": reads.newer,
        "newer_diff": reads.newer_diff,
        "statuses": ItemStatus.choices,
        "mechanisms": version.mechanisms,
        "physician": physician,
    }


BODY = "checklist/_checklist_body.html"


def _record_view(request: PracticeRequest, case: Case) -> None:
    audit.record_access(
        request,
        audit.CASE_VIEWED,
        practice_id=case.practice_id,
        table="checklist_case",
        row_id=case.pk,
        case_id=case.pk,
        detail={"label": case.label, "page": "checklist"},
    )


@practice_required()
def checklist_page(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    reads = _Reads.read(case)
    _record_view(request, case)
    physician = request.membership.is_physician
    body = fragments.body(
        request,
        BODY,
        (*reads.key(), physician),
        lambda: _checklist_context(reads, physician),
    )
    return render(request, "checklist/checklist.html", {"case": case, "body": body})


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def checklist_item(request: PracticeRequest, pk: int, category_pk: int) -> HttpResponse:
    """Saves one card: status and note together. htmx gets only the card's status line and,
    out of band, the item's revision (see _checklist_item.html); a refusal is shown there with
    status 200, so the browser keeps what was typed. Without JavaScript a save redirects to the
    card and a refusal renders the page with the posted entry kept."""
    case = get_case_for_user(request, pk)
    # Only an active category of the version this checklist is worked under (the newest
    # published one before the first save): never a draft's, a retired or an older one.
    _checklist, version = Checklist.objects.worked_under(case)
    category = get_object_or_404(
        Category.objects.filter(
            practice_id=case.practice_id, version=version, active=True
        ).select_related("version"),
        pk=category_pk,
    )
    form = forms.ChecklistItemForm(request.POST)
    item: ChecklistItem | None = None
    error = ""
    stale = False
    if not form.is_valid():
        error = " ".join(str(m) for messages_ in form.errors.values() for m in messages_)
    else:
        revision = form.cleaned_data["revision"]
        try:
            item = services.checklist_item_set(
                case=case,
                version=category.version,
                category=category,
                status=form.cleaned_data["status"],
                note=form.cleaned_data["note"],
                acting_user=request.user,
                # missing counts as stale
                expected_revision=-1 if revision is None else revision,
            )
        except services.StaleItem as refused:
            # The item as the other user left it: its revision goes back to the form, so an
            # explicit save after checking is taken.
            item, stale = refused.item, True
            error = _(
                "%(who)s changed this item in the meantime (now “%(status)s”). Your entry was"
                " not saved; check it and save again."
            ) % {
                "who": display_name(item.set_by) if item.set_by else "?",
                "status": item.get_status_display(),
            }
        except ValidationError as invalid:
            error = " ".join(invalid.messages)
    if request.htmx:
        return render(
            request,
            "checklist/_checklist_item_answer.html",
            {
                "category": category,
                "item": item,
                "error": error,
                "stale": stale,
                "saved": not error,
            },
        )
    if not error:
        return redirect(reverse("checklist", kwargs={"pk": case.pk}) + f"#category-{category.code}")
    context = _checklist_context(_Reads.read(case), request.membership.is_physician)
    for row in context["rows"]:
        if row["category"].pk == category.pk:
            # named at the top of the page too: the card may be far down
            messages.error(request, f"{row['row'].category.name}: {error}")
            row.update(
                error=error,
                stale=stale,
                posted_note=request.POST.get("note", ""),
                posted_status=request.POST.get("status", ""),
            )
            break
    else:  # the checklist moved to another version meanwhile
        messages.error(request, error)
    _record_view(request, case)
    # With the posted entry: rendered now, never kept.
    body = render_to_string(BODY, context, request=request)
    return render(request, "checklist/checklist.html", {"case": case, "body": body})


@practice_required(role=Membership.PHYSICIAN)
@require_POST
def checklist_move(request: PracticeRequest, pk: int) -> HttpResponse:
    case = get_case_for_user(request, pk)
    version = get_object_or_404(
        CatalogueVersion.objects.for_practice(case.practice_id).published(),
        pk=valid(forms.IdForm({"id": request.POST.get("version")})).cleaned_data["id"],
    )
    if Checklist.objects.filter(case=case).exists():
        services.checklist_move(case=case, to_version=version, acting_user=request.user)
        messages.success(
            request, _("The checklist now uses catalogue version %(n)s.") % {"n": version.number}
        )
    return redirect("checklist", pk=case.pk)
