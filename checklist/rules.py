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

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class LineFacts:
    """A prior therapy line as recorded; `worst_grade` is derived from its adverse events."""

    id: int
    number: int
    types: tuple[str, ...]
    regimen: str
    start: str
    end: str
    ongoing: bool
    end_reason: str
    worst_grade: int | None
    category_code: str | None


@dataclass(frozen=True)
class CaseFacts:
    tumour_types: tuple[str, ...] = ()
    unknown_primary: bool = False
    haematological: bool = False
    staging_systems: tuple[str, ...] = ()  # one per staging record, "not_applicable" allowed
    staging_labels: tuple[str, ...] = ()  # as recorded, e.g. "pT2 pN1a cM0 (UICC TNM 8)"
    metastasis_status: str = ""  # present | none_known | not_assessed | not_applicable | ""
    metastasis_sites: tuple[str, ...] = ()  # site labels as recorded
    immune_findings: int = 0
    immune_not_assessed: bool = False
    no_prior_therapy: bool = False
    lines: tuple[LineFacts, ...] = ()
    performance_records: int = 0
    biomarkers: int = 0


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


def gaps(summary: tuple[FactorSummary, ...]) -> tuple[str, ...]:
    """The groups with nothing recorded: neither a value nor an explicit statement."""
    return tuple(s.group for s in summary if s.state == NOT_RECORDED)


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
    return ChecklistSheet(catalogue.number, summary, gaps(summary), rows)


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
