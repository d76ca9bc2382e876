"""Tumour-board meetings as pages and PDFs show them: the agenda's rows, the quorum, and the
agenda and summary PDFs. Reads only; writes are in services.py.

Every row shows the note as it is (its newest version's state, question and registering
physician), read from the note itself: the agenda holds no copy. The order is the
coordinator's (`AgendaItem.position`); nothing clinical orders or filters the agenda.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.template.loader import render_to_string
from django.utils import translation

from checklist import notes
from checklist.models import (
    AgendaItem,
    AgendaStatus,
    BoardMeeting,
    BoardNoteVersion,
    BoardOutcome,
    Code,
    Discipline,
    NoteState,
)


@dataclass
class AgendaRow:
    item: AgendaItem
    number: int
    slot: datetime
    version: BoardNoteVersion | None  # the note's newest version
    signed: BoardNoteVersion | None  # its newest signed version
    tumours: str
    outcomes: list[BoardOutcome] = field(default_factory=list)
    doc: notes.Document | None = None  # the signed note, when a page or PDF shows it
    board_type: str = ""  # the label of the registration's MII board type

    @property
    def state(self) -> str:
        return self.version.state if self.version else ""

    @property
    def state_label(self) -> str:
        return str(NoteState(self.state).label) if self.state else ""

    @property
    def unsigned(self) -> bool:
        """The newest version is not signed (a draft, ready, or an amendment under way)."""
        return self.state != NoteState.SIGNED

    @property
    def pending(self) -> bool:
        return self.item.status == AgendaStatus.PENDING


def agenda_items(
    meeting: BoardMeeting, *, with_outcomes: bool = False, snapshots: bool = False
) -> list[AgendaItem]:
    items = AgendaItem.objects.filter(meeting=meeting).for_agenda(snapshots=snapshots)
    if with_outcomes:
        items = items.prefetch_related("outcomes__recorded_by__account_profile")
    return list(items)


def agenda_rows(
    meeting: BoardMeeting,
    *,
    with_outcomes: bool = False,
    snapshots: bool = False,
    items: list[AgendaItem] | None = None,
) -> list[AgendaRow]:
    """The meeting's agenda in the coordinator's order, with each case's time slot (the
    meeting's start plus the board's minutes per case before it). A fixed number of queries
    however many cases (`AgendaItem.objects.for_agenda`)."""
    if items is None:
        items = agenda_items(meeting, with_outcomes=with_outcomes, snapshots=snapshots)
    start = datetime.combine(meeting.date, meeting.starts_at)
    step = timedelta(minutes=meeting.board.minutes_per_case)
    language = translation.get_language() or "en"
    types = {c.code: c.label(language) for c in Code.objects.of("mii:therapieplanung-typ")}
    rows = []
    for index, item in enumerate(items):
        version = item.newest_version
        rows.append(
            AgendaRow(
                item=item,
                number=index + 1,
                slot=start + index * step,
                version=version,
                board_type=types.get(version.board_type, version.board_type) if version else "",
                signed=item.signed_version,
                tumours="; ".join(t.oncotree_name for t in item.case.tumours.all())
                if not item.case.unknown_primary
                else str(translation.gettext("cancer of unknown primary")),
                outcomes=list(item.outcomes.all()) if with_outcomes else [],
            )
        )
    return rows


@dataclass
class Quorum:
    expected: list[tuple[str, str]]  # (code, label) of the board's disciplines
    present: list[tuple[str, str]]
    missing: list[tuple[str, str]]


def quorum(meeting: BoardMeeting, attendance: list[Any]) -> Quorum:
    """Which of the board's expected disciplines are present: shown, never enforced."""
    labels = dict(Discipline.choices)
    attended = {a.discipline for a in attendance}
    expected = [(code, str(labels.get(code, code))) for code in meeting.board.disciplines]
    return Quorum(
        expected=expected,
        present=[pair for pair in expected if pair[0] in attended],
        missing=[pair for pair in expected if pair[0] not in attended],
    )


def deviation_labels(language: str) -> dict[str, str]:
    return {c.code: c.label(language) for c in Code.objects.of("mii:therapieabweichung")}


def _pdf(template: str, context: dict[str, Any], *, base_url: str, language: str) -> bytes:
    """HTML to PDF with WeasyPrint, reading nothing but our static files (as the note PDF)."""
    from weasyprint import HTML

    from checklist.pdf import StaticOnlyFetcher

    with translation.override(language):
        html = render_to_string(template, {**context, "language": language, "pdf": True})
    fetcher = StaticOnlyFetcher(base_url)
    pdf: bytes = HTML(string=html, base_url=base_url, url_fetcher=fetcher).write_pdf()
    return pdf


def render_agenda_pdf(
    meeting: BoardMeeting,
    rows: list[AgendaRow],
    *,
    with_notes: bool,
    base_url: str,
    language: str,
    practice_name: str,
) -> bytes:
    """The agenda: one page of overview, then (`with_notes`) each case's signed note as it was
    signed; a case whose note is not signed says so instead of showing a draft."""
    if with_notes:
        for row in rows:
            if row.signed is not None and row.signed.snapshot:
                snapshot = row.signed.snapshot
                row.doc = notes.document(
                    snapshot, notes.render_language(snapshot, language), offset=True
                )
    return _pdf(
        "checklist/meeting_agenda_pdf.html",
        {
            "meeting": meeting,
            "rows": rows,
            "with_notes": with_notes,
            "practice_name": practice_name,
            **notes.disclaimer_lines(),
        },
        base_url=base_url,
        language=language,
    )


def render_summary_pdf(
    meeting: BoardMeeting,
    rows: list[AgendaRow],
    attendance: list[Any],
    *,
    base_url: str,
    language: str,
    practice_name: str,
) -> bytes:
    """After the meeting: attendance, the quorum, and each case's board decision."""
    return _pdf(
        "checklist/meeting_summary_pdf.html",
        {
            "meeting": meeting,
            "rows": rows,
            "attendance": attendance,
            "quorum": quorum(meeting, attendance),
            "deviation_labels": deviation_labels(language),
            "practice_name": practice_name,
        },
        base_url=base_url,
        language=language,
    )
