"""rules.py: pure, deterministic, every active category in catalogue order, nothing that
orders, scores or judges a patient against a category."""

import dataclasses
import inspect
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from checklist import rules

CATEGORY = st.builds(
    rules.CategoryText,
    code=st.text(alphabet="abcdefghij_", min_size=1, max_size=8),
    position=st.integers(min_value=0, max_value=1000),
    group=st.text(max_size=10),
    name=st.text(max_size=20),
    description=st.text(max_size=40),
    source_section=st.text(max_size=10),
    source_quote=st.text(max_size=40),
    mechanisms=st.tuples(st.sampled_from(["support_immune_system", "inhibit_growth_signals"])),
    active=st.booleans(),
)
CATALOGUE = st.builds(
    rules.Catalogue,
    number=st.integers(min_value=1, max_value=99),
    categories=st.lists(CATEGORY, max_size=60, unique_by=lambda c: c.code).map(tuple),
)


def _lines(codes):
    return st.lists(
        st.builds(
            rules.LineFacts,
            id=st.integers(1, 10**6),
            # Systemic lines have a number, local and watch-and-wait episodes none.
            number=st.one_of(st.none(), st.integers(1, 20)),
            types=st.tuples(st.sampled_from(["CH", "HO", "IM", "ZS", "ST"])),
            regimen=st.text(max_size=20),
            start=st.just("2020-01-01"),
            end=st.sampled_from(["", "2021-01-01"]),
            ongoing=st.booleans(),
            end_reason=st.sampled_from(["", "A", "P", "E"]),
            worst_grade=st.one_of(st.none(), st.integers(1, 5)),
            category_code=st.one_of(st.none(), st.sampled_from(codes or ["x"])),
            kind=st.sampled_from(["systemic", "radiotherapy", "surgery", "watch_and_wait"]),
            label=st.text(max_size=30),
            unknown_grades=st.integers(0, 3),
        ),
        max_size=8,
    ).map(tuple)


@st.composite
def case_and_catalogue(draw):
    catalogue = draw(CATALOGUE)
    codes = [c.code for c in catalogue.categories]
    facts = rules.CaseFacts(
        tumour_types=draw(st.lists(st.text(max_size=10), max_size=2).map(tuple)),
        unknown_primary=draw(st.booleans()),
        haematological=draw(st.booleans()),
        staging_systems=draw(
            st.lists(st.sampled_from(["uicc_tnm", "binet", "not_applicable"]), max_size=3).map(
                tuple
            )
        ),
        metastasis_status=draw(
            st.sampled_from(["", "present", "none_known", "not_assessed", "not_applicable"])
        ),
        immune_findings=draw(st.integers(0, 3)),
        no_prior_therapy=draw(st.booleans()),
        lines=draw(_lines(codes)),
        performance_records=draw(st.integers(0, 3)),
        biomarkers=draw(st.integers(0, 3)),
    )
    return facts, catalogue


@given(case_and_catalogue())
def test_every_active_category_appears_once_in_catalogue_order(pair):
    facts, catalogue = pair
    result = rules.checklist(facts, catalogue)
    active = sorted(
        (c for c in catalogue.categories if c.active), key=lambda c: (c.position, c.code)
    )
    assert [row.category for row in result.rows] == active


@given(case_and_catalogue(), case_and_catalogue())
def test_the_categories_do_not_depend_on_the_case(first, second):
    facts_a, catalogue = first
    facts_b, _other = second
    rows_a = rules.checklist(facts_a, catalogue).rows
    rows_b = rules.checklist(dataclasses.replace(facts_b, lines=()), catalogue).rows
    assert [r.category for r in rows_a] == [r.category for r in rows_b]


@given(case_and_catalogue())
def test_identical_input_gives_identical_output(pair):
    facts, catalogue = pair
    assert rules.checklist(facts, catalogue) == rules.checklist(facts, catalogue)


@given(case_and_catalogue())
def test_a_line_appears_only_under_the_category_it_was_linked_to(pair):
    facts, catalogue = pair
    for row in rules.checklist(facts, catalogue).rows:
        assert all(line.category_code == row.category.code for line in row.linked_lines)


@given(case_and_catalogue())
def test_text_passes_through_verbatim(pair):
    facts, catalogue = pair
    by_code = {c.code: c for c in catalogue.categories}
    for row in rules.checklist(facts, catalogue).rows:
        assert row.category is by_code[row.category.code]


JUDGING = (
    "score",
    "rank",
    "match",
    "fit",
    "priority",
    "weight",
    "verdict",
    "colour",
    "color",
    "eligib",
    "recommend",
    "suitab",
    "relevance",
    "order_by",
    "sort",
)


def test_no_output_field_orders_scores_or_judges():
    for cls in (
        rules.ChecklistSheet,
        rules.ChecklistRow,
        rules.FactorSummary,
        rules.CategoryText,
        rules.LineFacts,
        rules.PartialDate,
        rules.StageBeforeMetastases,
    ):
        for field in dataclasses.fields(cls):
            assert not any(word in field.name.lower() for word in JUDGING), (cls, field.name)


def test_rules_imports_nothing_from_django():
    source = inspect.getsource(rules)
    assert "django" not in source.split('"""', 2)[2]


def test_documentation_states():
    empty = rules.summarise(rules.CaseFacts())
    assert {s.state for s in empty} == {rules.NOT_RECORDED}
    leukaemia = rules.summarise(
        rules.CaseFacts(
            tumour_types=("CLL",),
            staging_systems=("binet",),
            staging_labels=("B (Binet)",),
            metastasis_status="not_applicable",
            no_prior_therapy=True,
        )
    )
    states = {s.group: s.state for s in leukaemia}
    assert states[rules.METASTASES] == rules.NOT_APPLICABLE
    assert states[rules.PRIOR_THERAPIES] == rules.EXPLICITLY_NONE
    assert states[rules.STAGE] == rules.RECORDED
    none_known = rules.summarise(rules.CaseFacts(metastasis_status="none_known"))
    assert {s.group: s.state for s in none_known}[rules.METASTASES] == rules.EXPLICITLY_NONE


def test_the_catalogue_diff():
    old = (
        {"code": "a", "name_en": "A", "active": True},
        {"code": "b", "name_en": "B", "active": True},
    )
    new = (
        {"code": "b", "name_en": "B2", "active": False},
        {"code": "a", "name_en": "A", "active": True},
        {"code": "c", "name_en": "C", "active": True},
    )
    changes = {(d.code, d.change) for d in rules.diff_catalogues(old, new)}
    assert changes == {
        ("b", "changed"),
        ("b", "retired"),
        ("b", "moved"),
        ("a", "moved"),
        ("c", "added"),
    }
    assert {(d.code, d.change) for d in rules.diff_catalogues(new, old[:1])} >= {("b", "removed")}


# --- the stage-before-metastases gap (issue 13): dates with their precision -----------------


def _at_precision(day: date, precision: str) -> rules.PartialDate:
    if precision == rules.MONTH:
        day = day.replace(day=1)
    elif precision == rules.YEAR:
        day = day.replace(month=1, day=1)
    return rules.PartialDate(day, precision)


PARTIAL_DATE = st.builds(
    _at_precision,
    st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    st.sampled_from([rules.DAY, rules.MONTH, rules.YEAR]),
)


@given(PARTIAL_DATE, PARTIAL_DATE)
def test_a_date_is_certainly_before_another_only_if_every_day_it_may_be_is(a, b):
    assert a.earliest <= a.value <= a.latest
    assert not a.certainly_before(a)
    if a.certainly_before(b):
        assert a.latest < b.earliest and not b.certainly_before(a)
    if a.precision == b.precision == rules.DAY:
        assert a.certainly_before(b) == (a.value < b.value)


@given(PARTIAL_DATE)
def test_a_date_renders_at_its_precision_never_padded_to_a_day(value):
    text = value.iso()
    assert len(text) == {rules.DAY: 10, rules.MONTH: 7, rules.YEAR: 4}[value.precision]
    assert value.earliest.isoformat().startswith(text)


@given(st.lists(PARTIAL_DATE, max_size=4), st.lists(PARTIAL_DATE, max_size=4), st.randoms())
def test_the_stage_gap_shows_exactly_when_every_stage_certainly_precedes_every_metastasis(
    stages, metastases, random
):
    facts = rules.CaseFacts(staging_dates=tuple(stages), metastasis_dates=tuple(metastases))
    gap = rules.stage_before_metastases(facts)
    certain = all(s.certainly_before(m) for s in stages for m in metastases)
    assert (gap is not None) == (bool(stages) and bool(metastases) and certain)
    assert rules.timing_gaps(facts) == ((gap,) if gap else ())
    random.shuffle(stages)
    random.shuffle(metastases)
    shuffled = rules.CaseFacts(staging_dates=tuple(stages), metastasis_dates=tuple(metastases))
    assert rules.stage_before_metastases(shuffled) == gap  # the order of the rows does not count
    if gap is not None:
        assert gap.staged in stages and gap.first_metastasis in metastases
        # A staging recorded when the first metastasis was (or later) closes the gap.
        newer = (*stages, gap.first_metastasis)
        closed = rules.CaseFacts(staging_dates=newer, metastasis_dates=tuple(metastases))
        assert rules.stage_before_metastases(closed) is None


def test_the_stage_gap_is_conservative_with_imprecise_dates():
    march = rules.PartialDate(date(2022, 3, 1), rules.MONTH)
    gap = rules.stage_before_metastases

    def facts(stage, metastasis):
        return rules.CaseFacts(staging_dates=(stage,), metastasis_dates=(metastasis,))

    assert gap(facts(rules.PartialDate(date(2022, 2, 28)), march)) is not None
    # Staged in March 2022, metastasis on 20 March 2022: the stage may be the later one.
    assert gap(facts(march, rules.PartialDate(date(2022, 3, 20)))) is None
    assert gap(facts(rules.PartialDate(date(2022, 1, 1), rules.YEAR), march)) is None
    assert gap(facts(rules.PartialDate(date(2021, 1, 1), rules.YEAR), march)) is not None


# --- lifestyle, family history and genomic findings (issue 20): recorded facts only ---------

HISTORY_ROWS = st.lists(st.text(max_size=30), max_size=4).map(tuple)


@given(case_and_catalogue(), HISTORY_ROWS, HISTORY_ROWS, HISTORY_ROWS)
def test_history_passes_the_recorded_rows_through_and_changes_nothing_else(
    drawn, lifestyle, family, genomic
):
    facts, catalogue = drawn
    with_history = dataclasses.replace(
        facts, lifestyle=lifestyle, family_history=family, genomic_findings=genomic
    )
    history = rules.history(with_history)
    assert [h.group for h in history] == list(rules.HISTORY_GROUPS)
    assert [h.detail for h in history] == [lifestyle, family, genomic]
    for item, rows in zip(history, (lifestyle, family, genomic), strict=True):
        assert item.state == (rules.RECORDED if rows else rules.NOT_RECORDED)
    # The summary, the gaps and the categories are the same with or without them.
    plain, sheet = rules.checklist(facts, catalogue), rules.checklist(with_history, catalogue)
    assert (sheet.summary, sheet.gaps, sheet.rows) == (plain.summary, plain.gaps, plain.rows)
    assert sheet.history == history


def test_nothing_recorded_in_the_history_is_no_documentation_gap():
    sheet = rules.checklist(rules.CaseFacts(), rules.Catalogue(1, ()))
    assert {h.state for h in sheet.history} == {rules.NOT_RECORDED}
    assert not set(sheet.gaps) & set(rules.HISTORY_GROUPS)
