"""One definition of "documented": the case list's SQL filter (`CaseQuerySet.with_completeness`)
and the case page's rules.py summary (which the signing check reads too) agree on every factor
group, for cases saved to the database with and without each kind of row and statement."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checklist import rules
from checklist.models import (
    AdverseEvent,
    Biomarker,
    BoardNoteVersion,
    Case,
    ImmuneFinding,
    Metastasis,
    MetastasisStatus,
    PerformanceStatus,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from checklist.notes import missing_for_signing
from checklist.record import CaseRecord

# The SQL annotation that answers, for the case list, what rules.py answers for each factor.
SQL_FLAG = {
    rules.TUMOUR_TYPE: "has_tumour",
    rules.STAGE: "has_stage",
    rules.METASTASES: "has_metastasis_status",
    rules.IMMUNE_STATUS: "has_immune",
    rules.PRIOR_THERAPIES: "has_prior",
}
# The factor groups a signature needs documented (the stage is not one of them).
SIGNING_GROUPS = (
    rules.TUMOUR_TYPE,
    rules.METASTASES,
    rules.PRIOR_THERAPIES,
    rules.IMMUNE_STATUS,
)


@dataclass(frozen=True)
class Shape:
    """What a generated case holds. Combinations the forms refuse (metastasis rows beside
    "none known", lines beside "no prior therapy") are generated too: the database takes
    them, and both definitions must still agree."""

    tissues: tuple[str, ...] = ()  # one tumour per entry, by OncoTree tissue
    unknown_primary: bool = False
    staging_systems: tuple[str, ...] = ()  # one staging record per entry
    metastasis_status: str = ""
    metastases: int = 0
    immune_findings: int = 0
    immune_events: int = 0
    immune_not_assessed: bool = False
    lines: int = 0
    no_prior_therapy: bool = False
    performance: int = 0
    biomarkers: int = 0


SHAPES = st.builds(
    Shape,
    tissues=st.lists(st.sampled_from(["Breast", "Lymphoid"]), max_size=2).map(tuple),
    unknown_primary=st.booleans(),
    staging_systems=st.lists(
        st.sampled_from(["uicc_tnm", "binet", "not_applicable"]), max_size=2
    ).map(tuple),
    metastasis_status=st.sampled_from(["", *MetastasisStatus.values]),
    metastases=st.integers(0, 2),
    immune_findings=st.integers(0, 2),
    immune_events=st.integers(0, 2),
    immune_not_assessed=st.booleans(),
    lines=st.integers(0, 2),
    no_prior_therapy=st.booleans(),
    performance=st.integers(0, 1),
    biomarkers=st.integers(0, 1),
)


def save_case(practice, shape: Shape) -> Case:
    today = timezone.localdate()
    case = Case.objects.create(
        practice=practice,
        label="DOC-1",
        unknown_primary=shape.unknown_primary,
        metastasis_status=shape.metastasis_status,
        immune_not_assessed=shape.immune_not_assessed,
        no_prior_therapy=shape.no_prior_therapy,
        **Case.MINIMAL,
    )
    row = {"case": case, "practice": practice}
    Tumour.objects.bulk_create(
        Tumour(
            **row,
            oncotree_code="X",
            oncotree_name="X",
            oncotree_release="r",
            oncotree_tissue=tissue,
            laterality="left",
        )
        for tissue in shape.tissues
    )
    StagingRecord.objects.bulk_create(
        StagingRecord(**row, staged_on=today, kind="clinical", system=system)
        for system in shape.staging_systems
    )
    Metastasis.objects.bulk_create(
        Metastasis(**row, site="OSS", detected_on=today, timing="synchronous")
        for _ in range(shape.metastases)
    )
    ImmuneFinding.objects.bulk_create(
        ImmuneFinding(**row, assessed_on=today) for _ in range(shape.immune_findings)
    )
    AdverseEvent.objects.bulk_create(
        AdverseEvent(**row, term="colitis", grade="2", ctcae_version="5.0", immune_related=True)
        for _ in range(shape.immune_events)
    )
    TherapyLine.objects.bulk_create(
        TherapyLine(**row, number=n + 1, types=["CH"], position="later_advanced", started_on=today)
        for n in range(shape.lines)
    )
    PerformanceStatus.objects.bulk_create(
        PerformanceStatus(**row, assessed_on=today, ecog=1) for _ in range(shape.performance)
    )
    Biomarker.objects.bulk_create(
        Biomarker(**row, name="ER", kind="somatic", status="pending")
        for _ in range(shape.biomarkers)
    )
    return case


def test_every_factor_group_has_a_flag_in_sql():
    assert set(SQL_FLAG) == set(rules.FACTORS)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shape=SHAPES)
# The edges where the two definitions drifted, or could: each is documented by one thing only.
@example(shape=Shape(immune_events=1))
@example(shape=Shape(immune_findings=1))
@example(shape=Shape(immune_not_assessed=True))
@example(shape=Shape(staging_systems=("not_applicable",)))
@example(shape=Shape(metastasis_status="not_assessed"))
@example(shape=Shape(metastasis_status="not_applicable"))
@example(shape=Shape(metastasis_status="present"))
@example(shape=Shape(metastases=1))
@example(shape=Shape(unknown_primary=True))
@example(shape=Shape(tissues=("Lymphoid",)))
@example(shape=Shape(no_prior_therapy=True))
@example(shape=Shape(lines=1))
def test_the_case_list_and_the_case_page_agree_on_what_is_documented(practice_a, shape):
    with transaction.atomic():
        case = save_case(practice_a, shape)
        flags = Case.objects.with_completeness().get(pk=case.pk)
        record = CaseRecord.load(Case.objects.get(pk=case.pk))
        states = {summary.group: summary.state for summary in record.summary}

        page = {group: states[group] != rules.NOT_RECORDED for group in rules.FACTORS}
        listed = {group: getattr(flags, flag) for group, flag in SQL_FLAG.items()}
        assert page == listed, shape
        assert flags.complete == all(page.values()), shape

        # The signing check asks for exactly the undocumented groups it needs (and the
        # question, which this unsaved version has).
        missing = missing_for_signing(BoardNoteVersion(question="?"), record)
        assert len(missing) == sum(not page[group] for group in SIGNING_GROUPS), shape
        transaction.set_rollback(True)
