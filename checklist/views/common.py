"""Small helpers shared by the view modules: the case version a form was shown with, integer
query parameters, the stale-version page."""

from __future__ import annotations

from typing import Any, TypeVar

from django import forms
from django.core.exceptions import BadRequest
from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from checklist import audit, services
from checklist.access import PracticeRequest

FormT = TypeVar("FormT", bound=forms.Form)


class BadQuery(BadRequest):
    """A query string or small POST that did not validate: answered 400 with the form's errors
    (`system.error_400`), never a 500."""

    def __init__(self, form: forms.Form) -> None:
        super().__init__("invalid parameters")
        self.form = form


def valid(form: FormT) -> FormT:
    """The bound form, validated; a parameter that does not validate raises `BadQuery`."""
    if not form.is_valid():
        raise BadQuery(form)
    return form


def expected_version(request: PracticeRequest) -> int:
    """The case version the form was opened at. A form without one is treated as stale (-1
    matches no version), so a save can never skip the check."""
    try:
        return int(request.POST.get("expected_version", ""))
    except ValueError:
        return -1


def query_int(value: str | None, default: int | None = None, limit: int = 2**62) -> int | None:
    """An integer from a query or form value; anything else (or out of range) is `default`."""
    try:
        number = int(value or "")
    except ValueError:
        return default
    return number if -limit <= number <= limit else default


def stale_response(request: PracticeRequest, error: services.StaleVersion, context: dict[str, Any]):
    """The case changed since the form was opened: show who changed what, keep the input."""
    changes = audit.case_changes_since(error.case, error.expected)
    context.update({"case": error.case, "changes": changes, "stale": True})
    return render(request, "checklist/case_stale.html", context, status=409)


def submission_time(moment: Any) -> str:
    """The local time of an earlier submission, as the resubmit messages name it ("14:02")."""
    return formats.time_format(timezone.localtime(moment), "H:i")


def already_saved_message(error: services.AlreadySaved) -> str:
    return _("Already saved at %(time)s: this form was sent before; nothing was saved twice.") % {
        "time": submission_time(error.submission.created_at)
    }


def duplicate_question(
    error: services.PossibleDuplicate, title: Any, url: str = ""
) -> dict[str, str]:
    """The question shown above a form whose entry this user has just saved: `title` names the
    kind of entry ("Comorbidity"), `url` shows the saved one."""
    time = submission_time(error.saved_at)
    if error.changed_since:
        message = _(
            "You saved these values at %(time)s, and the entry was changed after that."
            " Save them again?"
        ) % {"time": time}
    else:
        kind = str(title)
        if not (get_language() or "").startswith("de"):  # German nouns keep their capital
            kind = kind[:1].lower() + kind[1:]
        message = _("You saved the same %(kind)s at %(time)s. Save again?") % {
            "kind": kind,
            "time": time,
        }
    return {"message": message, "url": url}
