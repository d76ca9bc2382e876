import functools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import template
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext, pgettext
from django.utils.translation import gettext_lazy as _

from checklist import models, rules, timeline

register = template.Library()

GROUP_LABELS = {
    rules.TUMOUR_TYPE: _("Tumour type"),
    rules.STAGE: _("Stage"),
    rules.METASTASES: _("Metastases"),
    rules.IMMUNE_STATUS: _("Immune status"),
    rules.PRIOR_THERAPIES: _("Prior therapies and tolerability"),
    rules.PERFORMANCE_STATUS: _("Performance status"),
    rules.BIOMARKERS: _("Biomarkers"),
    rules.LIFESTYLE: _("Smoking and alcohol"),
    rules.FAMILY_HISTORY: _("Family history"),
    rules.GENOMICS: _("Genomic findings"),
}
GROUP_ANCHORS = {
    rules.TUMOUR_TYPE: "tumours",
    rules.STAGE: "staging",
    rules.METASTASES: "metastases",
    rules.IMMUNE_STATUS: "immune",
    rules.PRIOR_THERAPIES: "therapy",
    rules.PERFORMANCE_STATUS: "performance",
    rules.BIOMARKERS: "biomarkers",
    rules.LIFESTYLE: "situation",
    rules.FAMILY_HISTORY: "family",
    rules.GENOMICS: "genomics",
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
    "genomics": _("Genomic findings"),
    "lifestyle": _("Smoking and alcohol"),
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


@register.simple_tag(takes_context=True)
def row_actions(context: Any, kind: str, row: Any) -> str:
    """`{% row_actions "tumour" t %}`: a case row's Edit and Delete links. Built once per
    kind and page (a long case has hundreds of rows), the row's id put in; kept in the page's
    root render context, which every included section shares."""
    case = context["case"]
    cache = context.render_context.dicts[0].setdefault("row_actions", {})
    parts = cache.get((case.pk, kind))
    if parts is None:
        # The row's id is the last "/0/" of a URL reversed with 0 for it.
        (edit_head, edit_tail), (delete_head, delete_tail) = (
            reverse(name, args=(case.pk, kind, 0)).rsplit("/0/", 1)
            for name in ("case_row_edit", "case_row_delete")
        )
        parts = cache[case.pk, kind] = (
            format_html('<a class="btn btn-sm btn-link p-0" href="{}/', edit_head),
            format_html('/{}" data-hx-get="{}/', edit_tail, edit_head),
            format_html(
                '/{}">{}</a> · <a class="btn btn-sm btn-link p-0" href="{}/',
                edit_tail,
                gettext("Edit"),
                delete_head,
            ),
            format_html('/{}">{}</a>', delete_tail, gettext("Delete")),
        )
    pk = int(row.pk)  # a number: nothing to escape
    return mark_safe(f"{parts[0]}{pk}{parts[1]}{pk}{parts[2]}{pk}{parts[3]}")  # noqa: S308


@register.simple_tag(takes_context=True)
def adverse_event_rows(context: Any, events: Any) -> str:
    """`{% adverse_event_rows events %}`: the rows of the adverse-events table
    (_adverse_events.html). Written here rather than in the template: a long case lists each
    event twice (its episode, the immune section) and the template engine took most of that
    page's row time. With `physician` and without `listed_only` a row has its Edit and
    Delete links; `id_prefix` names the rows' ids ("event" unless given)."""
    prefix = context.get("id_prefix") or "event"
    actions = context.get("physician") and not context.get("listed_only")
    dash = "—"
    texts = {
        "immune": gettext("immune-related"),
        "steroids": gettext("Systemic steroids"),
        "since": gettext("since"),
        "stopped": gettext("therapy stopped"),
        "reduced": gettext("dose reduced"),
        "rechallenged": gettext("rechallenged"),
    }
    rows = []
    for e in events:
        term = format_html("{}", e.term)
        if e.immune_related:
            term += format_html(' <span class="badge text-bg-light">{}</span>', texts["immune"])
        line = e.line
        cause = [line.label()] if line else []
        if e.attributed_agent:
            cause.append(e.attributed_agent)
        treatment = []
        if e.steroids:
            steroids = f"{texts['steroids']}: {e.get_steroids_display()}"
            if e.steroid_dose:
                steroids += f", {e.steroid_dose}"
            if e.steroid_started_on:
                steroids += f", {texts['since']} {precise_date(e, 'steroid_started_on')}"
            treatment.append(steroids)
        treatment += [t for t in (e.other_immunosuppressants, e.treatment) if t]
        consequence = [
            texts[k] for k, on in (("stopped", e.led_to_stop), ("reduced", e.dose_reduced)) if on
        ]
        if e.rechallenged:
            consequence.append(f"{texts['rechallenged']}: {e.get_rechallenged_display()}")
        rows.append(
            format_html(
                '<tr id="{}-{}" tabindex="-1" data-testid="adverse-event"><td>{} <small'
                ' class="text-body-secondary">{}</small></td><td>{}</td><td>{}</td>\n'
                "<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n{}</tr>",
                prefix,
                e.pk,
                term,
                e.get_ctcae_version_display(),
                e.grade_label,
                precise_date(e, "onset_on") if e.onset_on else dash,
                " · ".join(cause) or dash,
                "; ".join(treatment) or dash,
                ", ".join(consequence) or dash,
                e.course_label,
                format_html('<td class="d-print-none">{}</td>', row_actions(context, "event", e))
                if actions
                else "",
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - each row built by format_html


@register.simple_tag
def timeline_svg(layout: timeline.Layout) -> str:
    """The case's timeline (timeline.layout) as an SVG figure with a text equivalent. Written
    here rather than as a template: a long case has hundreds of marks, each a dozen
    attributes, and the template engine took a sixth of that page. Numbers are written
    without localisation (SVG coordinates); every text is escaped."""
    parts: list[str] = [
        format_html(
            '<figure class="timeline mb-0">\n<svg class="timeline-svg" viewBox="0 0 {} {}"'
            ' width="100%" role="img" aria-labelledby="timeline-title"'
            ' xmlns="http://www.w3.org/2000/svg">\n  <title id="timeline-title">{}</title>\n  ',
            layout.width,
            layout.height,
            gettext("Timeline of the recorded facts"),
        )
    ]
    for x, text in layout.ticks:
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="16" y2="{}" stroke="#ced4da" stroke-width="1"/>'
                '<text x="{}" y="12" font-size="11" text-anchor="middle" fill="#495057">{}'
                "</text>",
                x,
                x,
                layout.height,
                x,
                text,
            )
        )
    parts.append("\n  ")
    for row in layout.rows:
        parts.append(
            format_html(
                '<text x="4" y="{}" font-size="12" fill="#212529">{}</text><line x1="150"'
                ' x2="{}" y1="{}" y2="{}" stroke="#e9ecef" stroke-width="1"/>',
                int(row.y) + 4,
                row.title or LANE_LABELS.get(row.lane, row.lane),
                layout.width,
                row.y,
                row.y,
            )
        )
    parts.append("\n  ")
    ongoing = pgettext("therapy line", "ongoing")
    for m in layout.marks:
        when = partial_date(m.when)
        if m.width:
            parts.append(
                format_html(
                    '\n  <g class="tl-line"><rect x="{}" y="{}" width="{}" height="14" rx="3"'
                    ' fill="#adb5bd" fill-opacity="0.5" stroke="#495057" stroke-width="1"{}/>'
                    '<text x="{}" y="{}" font-size="10" fill="#212529" text-anchor="{}">{}{}'
                    "</text><title>{}: {}</title></g>\n  \n  ",
                    m.x,
                    int(m.y) - 7,
                    m.width,
                    mark_safe(' stroke-dasharray="4 2"') if m.ongoing else "",  # noqa: S308
                    m.label_x,
                    int(m.y) + 4,
                    m.label_anchor,
                    m.label,
                    f" ({ongoing})" if m.ongoing else "",
                    when,
                    m.label,
                )
            )
        else:
            parts.append(
                format_html(
                    '\n  <g class="tl-point"><circle cx="{}" cy="{}" r="5" fill="#343a40"/>'
                    "<title>{}: {}</title></g>\n  ",
                    m.x,
                    m.y,
                    when,
                    m.label,
                )
            )
    parts.append('\n</svg>\n<figcaption class="visually-hidden-focusable small">')
    for m in layout.marks:
        parts.append(format_html("{} {}; ", partial_date(m.when), m.label))
    parts.append("</figcaption>\n</figure>\n")
    return mark_safe("".join(parts))  # noqa: S308 - every part escaped above


@register.filter(name="display_name")
def display_name_filter(user: Any) -> str:
    """`{{ user|display_name }}`: "Dr. Dana Demo" (models.display_name)."""
    return models.display_name(user)


def local_datetime(value: Any, offset: bool = False) -> str:
    """A point in time as every rendering shows it: in the configured time zone, in the
    short date-time format of the active language ("2026-11-29 15:01" in English,
    "29.11.2026 15:01" in German); with `offset` (the PDF, read away from the screen) followed
    by its UTC offset: "29.11.2026 15:01 (UTC+01:00)". Takes an aware datetime or ISO 8601
    text (a snapshot's `signed_at`, a value in the audit trail); "" for none; other text is
    returned as it is."""
    if value is None or value == "":
        return ""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return str(value)
    if timezone.is_naive(moment):  # the database and the snapshots store UTC
        moment = moment.replace(tzinfo=UTC)
    moment = timezone.localtime(moment)
    text = formats.date_format(moment, "SHORT_DATETIME_FORMAT")
    if not offset:
        return text
    minutes = int((moment.utcoffset() or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{text} (UTC{sign}{hours:02d}:{rest:02d})"


def local_date(value: Any) -> str:
    """A calendar date in the short date format of the active language; "" for none."""
    if value is None or value == "":
        return ""
    day = parse_date(value) if isinstance(value, str) else value
    if not isinstance(day, date):
        return str(value)
    return formats.date_format(day, "SHORT_DATE_FORMAT")


@register.filter(name="local_datetime")
def local_datetime_filter(value: Any, arg: str = "") -> str:
    """`{{ when|local_datetime }}` on pages, the print view, Markdown and the audit pages;
    `{{ when|local_datetime:"offset" }}` in the PDF (see `local_datetime`)."""
    return local_datetime(value, offset=arg == "offset")


@register.filter
def partial_date(value: rules.PartialDate | None) -> str:
    """A date at its precision in the active language: the short date for a day, month and
    year for a month, the year alone for a year; never padded to a day."""
    if value is None:
        return ""
    return _date_text(value.value, value.precision, get_language())


@functools.lru_cache(maxsize=4096)
def _date_text(value: date, precision: str, language: str | None) -> str:
    """Formatted once per date, precision and language (the format is the language's: a long
    case page shows hundreds of dates, many of them more than once)."""
    if precision == rules.YEAR:
        return str(value.year)
    if precision == rules.MONTH:
        return formats.date_format(value, "YEAR_MONTH_FORMAT")
    return formats.date_format(value, "SHORT_DATE_FORMAT")


@register.filter
def precise_date(obj: Any, name: str) -> str:
    """`{{ row|precise_date:"diagnosed_on" }}`: a row's date at the precision it was recorded
    with, or "" when none is recorded."""
    return partial_date(models.partial_date(obj, name))


@register.filter
def lab(obj: Any, name: str) -> str:
    """`{{ finding|lab:"platelets" }}`: " (lab: 150000 /µL)" after a value converted on entry,
    when the laboratory reported it in another unit; "" otherwise."""
    from checklist.forms import lab_text

    text = lab_text(obj, name)
    return str(_(" (lab: %(value)s)") % {"value": text}) if text else ""
