"""The heart and the safety line: a pure module, no Django imports.

Input: a frozen dataclass of the case's recorded facts (and, for the checklist, a catalogue
version). Output: the case-level summary of the orientation factors the practice's source names
(tumour type and stage, metastases, immune status, prior therapies and tolerability), each as
recorded / explicitly none / not recorded / not applicable; the case's documentation gaps; and
for every active category, in catalogue order, its documented text and the therapy lines the
physician linked to it. Recorded facts pass through verbatim. Nothing here computes a match,
mismatch, score, rank, filter, colour or verdict between a patient and a category.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date

RECORDED = "recorded"
EXPLICITLY_NONE = "explicitly_none"
NOT_RECORDED = "not_recorded"
NOT_APPLICABLE = "not_applicable"
NOT_ASSESSED = "not_assessed"

# The orientation factors, in the source's order ("The combination ... is oriented toward").
TUMOUR_TYPE = "tumour_type"
STAGE = "stage"
METASTASES = "metastases"
IMMUNE_STATUS = "immune_status"
PRIOR_THERAPIES = "prior_therapies"
FACTORS = (TUMOUR_TYPE, STAGE, METASTASES, IMMUNE_STATUS, PRIOR_THERAPIES)
# Recorded alongside them; the source orients therapy to "the individual situation".
PERFORMANCE_STATUS = "performance_status"
BIOMARKERS = "biomarkers"
GROUPS = (*FACTORS, PERFORMANCE_STATUS, BIOMARKERS)
# Recorded beside them as the patient's history and molecular findings: listed as recorded,
# verbatim; none of them is a documentation gap when nothing is recorded.
LIFESTYLE = "lifestyle"
FAMILY_HISTORY = "family_history"
GENOMICS = "genomics"
HISTORY_GROUPS = (LIFESTYLE, FAMILY_HISTORY, GENOMICS)


@dataclass(frozen=True)
class LineFacts:
    """A prior therapy episode as recorded (a systemic line has its `number`, other episodes
    none); `worst_grade` is derived from its adverse events with a known grade, and
    `unknown_grades` counts those whose grade is unknown (not counted, and said)."""

    id: int
    number: int | None
    types: tuple[str, ...]
    regimen: str
    start: str
    end: str
    ongoing: bool
    end_reason: str
    worst_grade: int | None
    category_code: str | None
    kind: str = "systemic"
    label: str = ""  # "Line 1 · maintenance", "Radiotherapy · 2021-03"
    unknown_grades: int = 0


DAY = "day"
MONTH = "month"
YEAR = "year"


@dataclass(frozen=True)
class PartialDate:
    """A recorded date and how precisely it is known. `value` holds the first day of the month
    or year when the precision is coarser; it is never shown as a day."""

    value: date
    precision: str = DAY  # day | month | year

    @property
    def earliest(self) -> date:
        if self.precision == YEAR:
            return date(self.value.year, 1, 1)
        if self.precision == MONTH:
            return self.value.replace(day=1)
        return self.value

    @property
    def latest(self) -> date:
        if self.precision == YEAR:
            return date(self.value.year, 12, 31)
        if self.precision == MONTH:
            last = calendar.monthrange(self.value.year, self.value.month)[1]
            return self.value.replace(day=last)
        return self.value

    def certainly_before(self, other: PartialDate) -> bool:
        """True only if every day this date may stand for lies before every day of `other`."""
        return self.latest < other.earliest

    def iso(self) -> str:
        """ISO 8601 at the date's precision: 2019-03-20, 2019-03 or 2019."""
        if self.precision == YEAR:
            return f"{self.value.year:04d}"
        if self.precision == MONTH:
            return f"{self.value.year:04d}-{self.value.month:02d}"
        return self.value.isoformat()


@dataclass(frozen=True)
class CaseFacts:
    tumour_types: tuple[str, ...] = ()
    unknown_primary: bool = False
    haematological: bool = False
    staging_systems: tuple[str, ...] = ()  # one per staging record, "not_applicable" allowed
    staging_labels: tuple[str, ...] = ()  # as recorded, e.g. "pT2 pN1a cM0 (UICC TNM 8)"
    metastasis_status: str = ""  # present | none_known | not_assessed | not_applicable | ""
    metastasis_sites: tuple[str, ...] = ()  # site labels as recorded
    # Dates of the staging records with a staging system (not "not applicable") and of the
    # metastasis rows (detected on), in any order.
    staging_dates: tuple[PartialDate, ...] = ()
    metastasis_dates: tuple[PartialDate, ...] = ()
    immune_findings: int = 0
    immune_not_assessed: bool = False
    no_prior_therapy: bool = False
    lines: tuple[LineFacts, ...] = ()
    performance_records: int = 0
    biomarkers: int = 0
    # The history and molecular findings, one text per recorded row, as recorded.
    lifestyle: tuple[str, ...] = ()
    family_history: tuple[str, ...] = ()
    genomic_findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FactorSummary:
    group: str
    state: str
    detail: tuple[str, ...] = field(default_factory=tuple)


def _tumour_type(facts: CaseFacts) -> FactorSummary:
    if facts.tumour_types:
        return FactorSummary(TUMOUR_TYPE, RECORDED, facts.tumour_types)
    if facts.unknown_primary:
        return FactorSummary(TUMOUR_TYPE, EXPLICITLY_NONE, ("unknown primary",))
    return FactorSummary(TUMOUR_TYPE, NOT_RECORDED)


def _stage(facts: CaseFacts) -> FactorSummary:
    systems = tuple(s for s in facts.staging_systems if s != "not_applicable")
    if systems:
        return FactorSummary(STAGE, RECORDED, facts.staging_labels or systems)
    if facts.staging_systems:
        return FactorSummary(STAGE, NOT_APPLICABLE)
    return FactorSummary(STAGE, NOT_RECORDED)


def _metastases(facts: CaseFacts) -> FactorSummary:
    status = facts.metastasis_status
    if status == "present":
        return FactorSummary(METASTASES, RECORDED, facts.metastasis_sites)
    if status == "none_known":
        return FactorSummary(METASTASES, EXPLICITLY_NONE)
    if status == "not_applicable":
        return FactorSummary(METASTASES, NOT_APPLICABLE)
    if status == "not_assessed":
        return FactorSummary(METASTASES, NOT_ASSESSED)
    return FactorSummary(METASTASES, NOT_RECORDED)


def _immune(facts: CaseFacts) -> FactorSummary:
    if facts.immune_findings:
        return FactorSummary(IMMUNE_STATUS, RECORDED)
    if facts.immune_not_assessed:
        return FactorSummary(IMMUNE_STATUS, NOT_ASSESSED)
    return FactorSummary(IMMUNE_STATUS, NOT_RECORDED)


def _prior(facts: CaseFacts) -> FactorSummary:
    if facts.lines:
        return FactorSummary(PRIOR_THERAPIES, RECORDED)
    if facts.no_prior_therapy:
        return FactorSummary(PRIOR_THERAPIES, EXPLICITLY_NONE)
    return FactorSummary(PRIOR_THERAPIES, NOT_RECORDED)


def _count(group: str, count: int) -> FactorSummary:
    return FactorSummary(group, RECORDED if count else NOT_RECORDED)


def summarise(facts: CaseFacts) -> tuple[FactorSummary, ...]:
    """Each factor group's documentation state, in fixed order."""
    return (
        _tumour_type(facts),
        _stage(facts),
        _metastases(facts),
        _immune(facts),
        _prior(facts),
        _count(PERFORMANCE_STATUS, facts.performance_records),
        _count(BIOMARKERS, facts.biomarkers),
    )


def history(facts: CaseFacts) -> tuple[FactorSummary, ...]:
    """Lifestyle, family history and genomic findings, each with its recorded rows verbatim
    (in the order given), in fixed order. Nothing is derived from them."""
    return tuple(
        FactorSummary(group, RECORDED if rows else NOT_RECORDED, rows)
        for group, rows in (
            (LIFESTYLE, facts.lifestyle),
            (FAMILY_HISTORY, facts.family_history),
            (GENOMICS, facts.genomic_findings),
        )
    )


def gaps(summary: tuple[FactorSummary, ...]) -> tuple[str, ...]:
    """The groups with nothing recorded: neither a value nor an explicit statement."""
    return tuple(s.group for s in summary if s.state == NOT_RECORDED)


@dataclass(frozen=True)
class StageBeforeMetastases:
    """A documentation gap: metastases are recorded, and the newest stage was recorded before
    the first of them. It says what the record shows, not what the stage is."""

    staged: PartialDate  # the newest staging record
    first_metastasis: PartialDate  # the earliest metastasis row


def stage_before_metastases(facts: CaseFacts) -> StageBeforeMetastases | None:
    """The gap, if every staging record certainly precedes the first metastasis.

    Conservative with imprecise dates: a staging record that may fall on or after the first
    metastasis (the same day, or the same month at month precision) closes the gap, so the
    gap is shown only when the record certainly says so. No staging at all is the stage
    factor's own gap, not this one.
    """
    if not facts.staging_dates or not facts.metastasis_dates:
        return None
    newest = max(facts.staging_dates, key=lambda d: (d.latest, d.earliest))
    first = min(facts.metastasis_dates, key=lambda d: (d.earliest, d.latest))
    if newest.certainly_before(first):
        return StageBeforeMetastases(staged=newest, first_metastasis=first)
    return None


def timing_gaps(facts: CaseFacts) -> tuple[StageBeforeMetastases, ...]:
    """Gaps between recorded facts (beside the factor groups with nothing recorded)."""
    gap = stage_before_metastases(facts)
    return (gap,) if gap else ()


# --- the checklist: every active category, in catalogue order --------------------------------


@dataclass(frozen=True)
class CategoryText:
    """A category as the practice's catalogue documents it (text passes through verbatim)."""

    code: str
    position: int
    group: str
    name: str
    description: str
    source_section: str
    source_quote: str
    mechanisms: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class Catalogue:
    number: int
    categories: tuple[CategoryText, ...]


@dataclass(frozen=True)
class ChecklistRow:
    category: CategoryText
    linked_lines: tuple[LineFacts, ...]  # the lines the physician linked to this category


@dataclass(frozen=True)
class ChecklistSheet:
    """The checklist as shown for a case; the stored statuses and notes are models.Checklist."""

    catalogue_number: int
    summary: tuple[FactorSummary, ...]
    gaps: tuple[str, ...]
    rows: tuple[ChecklistRow, ...]
    history: tuple[FactorSummary, ...] = ()  # lifestyle, family history, genomic findings


def checklist(facts: CaseFacts, catalogue: Catalogue) -> ChecklistSheet:
    """The case-level summary once, then every active category in the catalogue's order.

    The order comes from the catalogue alone (`position`, then `code` to break ties); the
    case's facts decide nothing about which categories appear or where. A line appears under
    a category only because the physician linked it there.
    """
    summary = summarise(facts)
    ordered = sorted(
        (c for c in catalogue.categories if c.active), key=lambda c: (c.position, c.code)
    )
    rows = tuple(
        ChecklistRow(
            category=category,
            linked_lines=tuple(line for line in facts.lines if line.category_code == category.code),
        )
        for category in ordered
    )
    return ChecklistSheet(catalogue.number, summary, gaps(summary), rows, history(facts))


@dataclass(frozen=True)
class DiffEntry:
    code: str
    change: str  # added | removed | changed | moved | retired | reactivated
    fields: tuple[tuple[str, str, str], ...] = ()  # (field, old, new)


def diff_catalogues(
    old: tuple[dict[str, object], ...], new: tuple[dict[str, object], ...]
) -> tuple[DiffEntry, ...]:
    """What changed between two catalogue versions, category by category (matched by code).

    Rows are dicts of a category's fields, in each version's order; `active` and the order are
    reported separately from the text.
    """
    old_by = {str(row["code"]): row for row in old}
    new_by = {str(row["code"]): row for row in new}
    old_order = [code for code in old_by if code in new_by]
    new_order = [code for code in new_by if code in old_by]
    entries: list[DiffEntry] = []
    for code, row in new_by.items():
        before = old_by.get(code)
        if before is None:
            entries.append(DiffEntry(code, "added"))
            continue
        changed = tuple(
            (name, str(before.get(name, "")), str(value))
            for name, value in row.items()
            if name not in ("code", "active", "position") and before.get(name) != value
        )
        if changed:
            entries.append(DiffEntry(code, "changed", changed))
        if before.get("active") and not row.get("active"):
            entries.append(DiffEntry(code, "retired"))
        elif not before.get("active") and row.get("active"):
            entries.append(DiffEntry(code, "reactivated"))
        if old_order.index(code) != new_order.index(code):
            entries.append(DiffEntry(code, "moved"))
    entries.extend(DiffEntry(code, "removed") for code in old_by if code not in new_by)
    return tuple(entries)
