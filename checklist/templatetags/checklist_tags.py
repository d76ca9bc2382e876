from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from checklist import rules

register = template.Library()

GROUP_LABELS = {
    rules.TUMOUR_TYPE: _("Tumour type"),
    rules.STAGE: _("Stage"),
    rules.METASTASES: _("Metastases"),
    rules.IMMUNE_STATUS: _("Immune status"),
    rules.PRIOR_THERAPIES: _("Prior therapies and tolerability"),
    rules.PERFORMANCE_STATUS: _("Performance status"),
    rules.BIOMARKERS: _("Biomarkers"),
}
GROUP_ANCHORS = {
    rules.TUMOUR_TYPE: "tumours",
    rules.STAGE: "staging",
    rules.METASTASES: "metastases",
    rules.IMMUNE_STATUS: "immune",
    rules.PRIOR_THERAPIES: "therapy",
    rules.PERFORMANCE_STATUS: "performance",
    rules.BIOMARKERS: "biomarkers",
}
STATE_LABELS = {
    rules.RECORDED: _("recorded"),
    rules.EXPLICITLY_NONE: _("explicitly none"),
    rules.NOT_RECORDED: _("not recorded"),
    rules.NOT_APPLICABLE: _("not applicable"),
    rules.NOT_ASSESSED: _("stated as not assessed"),
}
LANE_LABELS = {
    "diagnosis": _("Diagnosis"),
    "staging": _("Staging"),
    "metastasis": _("Metastases"),
    "therapy": _("Therapy lines"),
    "event": _("Adverse events"),
    "performance": _("Performance status"),
    "immune": _("Immune findings"),
}


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    if mapping is None:
        return ""
    return mapping.get(key, key)


@register.filter
def group_label(group: str) -> Any:
    return GROUP_LABELS.get(group, group)


@register.filter
def group_anchor(group: str) -> str:
    return GROUP_ANCHORS.get(group, "")


@register.filter
def state_label(state: str) -> Any:
    return STATE_LABELS.get(state, state)


@register.filter
def lane_label(lane: str) -> Any:
    return LANE_LABELS.get(lane, lane)


@register.simple_tag
def version_field(case: Any) -> str:
    return format_html('<input type="hidden" name="expected_version" value="{}">', case.version)


@register.filter(is_safe=True)
def markdown_quote(value: Any) -> str:
    """Text for a "> " quote of the Markdown note, every one of its lines quoted. The note's
    strings arrive escaped by `notes.markdown_text`; anything else is escaped here."""
    from django.utils.safestring import SafeData, mark_safe

    from checklist.notes import MARKDOWN_CONTINUATION, markdown_text

    text = value if isinstance(value, SafeData) else markdown_text(str(value))
    return mark_safe(str(text).replace(MARKDOWN_CONTINUATION, "\n> "))  # noqa: S308 - escaped
