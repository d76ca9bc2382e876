"""The case page's sections rendered alone, for htmx: a form shown in place, a section after a
save with the factor summary, timeline and case version out of band, and the stale section.

Each section is `templates/checklist/_case_<section>.html`; the full page includes the same
templates, so page and fragment never differ."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language

from checklist import audit, services
from checklist.access import PracticeRequest
from checklist.models import (
    COMMON_BIOMARKERS,
    Case,
)
from checklist.record import CaseRecord
from checklist.views.common import (
    query_int,
    stale_response,
)


@dataclass(frozen=True)
class InlineCaseForm:
    """A form of the case itself shown in place: its section, its template, the form's id and
    the element that takes the focus after a save."""

    anchor: str
    template: str
    form_id: str
    saved_focus: str


def inline_context(
    context: dict[str, Any], template: str = "checklist/_row_form.html"
) -> dict[str, Any]:
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


def section_response(
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


def stale_section(
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
    extra = inline_context({**context, "anchor": anchor}, template) if context.get("form") else {}
    extra.update({"stale": True, "stale_changes": changes, "focus": "stale-alert"})
    extra.pop("form_version", None)  # saved again, it is checked against the current version
    return section_response(request, error.case, anchor, status=409, oob=True, **extra)
