"""rules.py: pure, deterministic, every active category in catalogue order, nothing that
orders, scores or judges a patient against a category."""

import dataclasses
import inspect

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
            number=st.integers(1, 20),
            types=st.tuples(st.sampled_from(["CH", "HO", "IM", "ZS", "ST"])),
            regimen=st.text(max_size=20),
            start=st.just("2020-01-01"),
            end=st.sampled_from(["", "2021-01-01"]),
            ongoing=st.booleans(),
            end_reason=st.sampled_from(["", "A", "P", "E"]),
            worst_grade=st.one_of(st.none(), st.integers(1, 5)),
            category_code=st.one_of(st.none(), st.sampled_from(codes or ["x"])),
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
