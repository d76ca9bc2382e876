"""Tags of the entry forms: the one-time submission token of create forms."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

from checklist.models import SubmissionToken

register = template.Library()


def _unused_posted_token(request: Any) -> str | None:
    """The token the form was posted with, if it is valid and nothing was saved under it: a
    form shown again (an error, a question) keeps its token, so that its next POST still
    counts once. A token that saved (an htmx form shown again for the next entry) is not
    reused."""
    value = request.POST.get("submission_token", "") if request.method == "POST" else ""
    if not value:
        return None
    try:
        key = SubmissionToken.read(value, request.user)
    except ValueError:
        return None
    if SubmissionToken.objects.filter(pk=key).exists():
        return None
    return str(value)


@register.simple_tag(takes_context=True)
def submission_token(context: Any) -> str:
    """`{% submission_token %}` in every create form: the hidden one-time token that
    `services.claim_submission` consumes with the save."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    value = _unused_posted_token(request) or SubmissionToken.issue(user)
    return format_html('<input type="hidden" name="submission_token" value="{}">', value)
