"""Issue 15's data migrations, run on rows of the old shapes: a biomarker's kind split into
what it describes and the specimen type, a metastasis found by "imaging" becoming "imaging,
method not recorded", and the free-text vaccinations kept verbatim as vaccination rows; and
back again."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("checklist", "0015_prophylaxis_vaccination_biomarker_method_and_more")
AFTER = ("checklist", "0019_remove_immunefinding_vaccinations_and_more")

TEXT = "Influenza 10/2023; Pneumokokken (PCV20) 2022 – COVID-19: 3× mRNA, zuletzt 11/2023"


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def old_shape():
    """The database at the schema before the data moves; back at the newest afterwards."""
    apps = _migrate(BEFORE)
    yield apps
    _migrate_to_newest()


def _migrate_to_newest() -> None:
    """The newest schema, later migrations included: the pages and the next tests need it."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _case(apps):
    Practice = apps.get_model("checklist", "Practice")
    Case = apps.get_model("checklist", "Case")
    practice = Practice.objects.create(name="Migration practice")
    case = Case.objects.create(
        practice=practice, label="MIG-1", year_of_birth=1950, sex="male", situation="recurrence"
    )
    return practice, case


def test_it_moves_the_old_shapes_and_back(old_shape):
    apps = old_shape
    practice, case = _case(apps)
    row = {"practice": practice, "case": case}
    Biomarker = apps.get_model("checklist", "Biomarker")
    for kind in ("tissue", "serum", "germline"):
        Biomarker.objects.create(**row, name=f"M-{kind}", kind=kind, status="pending")
    Metastasis = apps.get_model("checklist", "Metastasis")
    for method in ("imaging", "histology", ""):
        Metastasis.objects.create(
            **row,
            site="OSS",
            detected_on=date(2023, 1, 1),
            timing="metachronous",
            established_by=method,
        )
    ImmuneFinding = apps.get_model("checklist", "ImmuneFinding")
    ImmuneFinding.objects.create(**row, assessed_on=date(2024, 1, 5), vaccinations=TEXT)
    ImmuneFinding.objects.create(**row, assessed_on=date(2024, 3, 5), vaccinations="")

    apps = _migrate(AFTER)
    Biomarker = apps.get_model("checklist", "Biomarker")
    assert {(b.name, b.kind, b.specimen_type) for b in Biomarker.objects.all()} == {
        ("M-tissue", "somatic", "tissue"),
        ("M-serum", "circulating", "serum"),
        ("M-germline", "germline", ""),  # never recorded, not guessed
    }
    Metastasis = apps.get_model("checklist", "Metastasis")
    assert sorted(Metastasis.objects.values_list("established_by", flat=True)) == [
        "",
        "histology",
        "imaging_unspecified",  # shown as "imaging, method not recorded"; no method guessed
    ]
    Vaccination = apps.get_model("checklist", "Vaccination")
    (vaccination,) = Vaccination.objects.all()
    assert vaccination.note == TEXT  # verbatim
    assert (vaccination.vaccine, vaccination.given_on) == ("", None)
    assert (vaccination.case_id, vaccination.practice_id) == (case.pk, practice.pk)
    ImmuneFinding = apps.get_model("checklist", "ImmuneFinding")
    assert not hasattr(ImmuneFinding(), "vaccinations")

    apps = _migrate(BEFORE)
    Biomarker = apps.get_model("checklist", "Biomarker")
    assert sorted(Biomarker.objects.values_list("kind", flat=True)) == [
        "germline",
        "serum",
        "tissue",
    ]
    Metastasis = apps.get_model("checklist", "Metastasis")
    assert sorted(Metastasis.objects.values_list("established_by", flat=True)) == [
        "",
        "histology",
        "imaging",
    ]
    ImmuneFinding = apps.get_model("checklist", "ImmuneFinding")
    texts = dict(ImmuneFinding.objects.values_list("assessed_on", "vaccinations"))
    assert texts == {date(2024, 1, 5): TEXT, date(2024, 3, 5): ""}
    assert not apps.get_model("checklist", "Vaccination").objects.exists()


def test_the_page_shows_a_moved_text_as_the_physicians_words(old_shape):
    apps = old_shape
    practice, case = _case(apps)
    ImmuneFinding = apps.get_model("checklist", "ImmuneFinding")
    ImmuneFinding.objects.create(
        practice=practice, case=case, assessed_on=date(2024, 1, 5), vaccinations=TEXT
    )
    _migrate_to_newest()

    from checklist.models import Membership, Practice
    from tests.factories import logged_in, make_user

    alice = make_user("mig-alice", Practice.objects.get(pk=practice.pk), Membership.PHYSICIAN)
    page = logged_in(alice).get(f"/cases/{case.pk}/").content.decode()
    assert "recorded as text before vaccinations were dated rows:" in page
    assert f"<q data-physician-text>{TEXT}</q>" in page
