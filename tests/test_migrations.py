"""Data migrations, run on rows of the old shapes: the database is taken back to the migration
before the change, rows are written with the historical models, and migrated forward."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("checklist", "0019_remove_immunefinding_vaccinations_and_more")]
AFTER = [("checklist", "0022_remove_immuneadverseevent_case_and_more")]


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    apps = _migrate(BEFORE)
    yield apps
    _migrate(executor_leaf_nodes())


def executor_leaf_nodes() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _old_case(apps: Any) -> tuple[Any, Any]:
    practice = apps.get_model("checklist", "Practice").objects.create(name="Old practice")
    case = apps.get_model("checklist", "Case").objects.create(
        practice=practice, label="OLD-1", year_of_birth=1960, sex="female", situation="recurrence"
    )
    return practice, case


def test_therapy_lines_become_episodes_and_both_event_tables_become_one(old_apps):
    practice, case = _old_case(old_apps)
    line_model = old_apps.get_model("checklist", "TherapyLine")
    row = {"practice": practice, "case": case, "started_on": date(2021, 3, 1)}
    first = line_model.objects.create(
        **row, number=1, types=["HO"], setting="palliative", palliative_line=1, regimen="Letrozole"
    )
    second = line_model.objects.create(
        **row, number=2, types=["IM"], setting="palliative", palliative_line=2
    )
    maintenance = line_model.objects.create(**row, number=3, types=["ZS"], setting="maintenance")
    radiotherapy = line_model.objects.create(
        **row, number=0, types=["ST"], setting="definitive", started_on_precision="month"
    )
    surveillance = line_model.objects.create(**row, number=0, types=["WW"], setting="other")
    event_model = old_apps.get_model("checklist", "AdverseEvent")
    event = {"practice": practice, "case": case, "ctcae_version": "5.0"}
    open_event = event_model.objects.create(
        **event, line=second, term="Colitis", grade=3, resolved=False, led_to_stop=True
    )
    resolved_event = event_model.objects.create(
        **event, line=first, term="Arthralgia", grade=1, resolved=True, attributed_agent="x"
    )
    irae_model = old_apps.get_model("checklist", "ImmuneAdverseEvent")
    irae = {"practice": practice, "case": case}
    irae_model.objects.create(
        **irae,
        organ="lung",
        grade=3,
        treatment="prednisolone 1 mg/kg",
        resolved=False,
        rechallenged=True,
        occurred_on=date(2022, 5, 1),
        occurred_on_precision="month",
    )
    irae_model.objects.create(**irae, organ="liver", grade=2, resolved=True)

    apps = _migrate(AFTER)
    lines = apps.get_model("checklist", "TherapyLine").objects
    assert [
        (line.kind, line.number, line.position)
        for line in lines.order_by("pk")
        if line.pk in (first.pk, second.pk, maintenance.pk, radiotherapy.pk, surveillance.pk)
    ] == [
        ("systemic", 1, "first_advanced"),
        ("systemic", 2, "later_advanced"),
        ("systemic", 3, "maintenance"),
        ("radiotherapy", None, "definitive"),  # no "line 0"
        ("watch_and_wait", None, "S"),
    ]
    assert lines.get(pk=first.pk).regimen == "Letrozole"
    assert lines.get(pk=radiotherapy.pk).started_on_precision == "month"

    events = apps.get_model("checklist", "AdverseEvent").objects
    assert events.count() == 4
    old_open = events.get(pk=open_event.pk)
    # An unticked "resolved" never said "persisting".
    assert (old_open.course, old_open.grade, old_open.line_id) == ("not_recorded", "3", second.pk)
    assert old_open.led_to_stop and not old_open.immune_related
    assert old_open.ctcae_version == "5.0"
    old_resolved = events.get(pk=resolved_event.pk)
    assert (old_resolved.course, old_resolved.attributed_agent) == ("resolved", "x")

    lung = events.get(term="lung")
    assert lung.immune_related and lung.case_id == case.pk and lung.line_id is None
    assert (lung.grade, lung.ctcae_version, lung.course) == ("3", "not_recorded", "not_recorded")
    assert (lung.treatment, lung.rechallenged) == ("prednisolone 1 mg/kg", "yes")
    assert (lung.onset_on, lung.onset_on_precision) == (date(2022, 5, 1), "month")
    liver = events.get(term="liver")
    assert (liver.immune_related, liver.grade, liver.course) == (True, "2", "resolved")
    assert (liver.rechallenged, liver.ctcae_version) == ("", "not_recorded")
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('checklist_immuneadverseevent')")
        assert cursor.fetchone() == (None,)


def test_the_reverse_restores_the_old_shapes(old_apps):
    practice, case = _old_case(old_apps)
    irae_model = old_apps.get_model("checklist", "ImmuneAdverseEvent")
    irae_model.objects.create(practice=practice, case=case, organ="skin", grade=2, resolved=True)
    line_model = old_apps.get_model("checklist", "TherapyLine")
    line_model.objects.create(
        practice=practice,
        case=case,
        number=1,
        types=["OP"],
        setting="neoadjuvant",
        started_on=date(2020, 1, 1),
    )
    _migrate(AFTER)
    apps = _migrate(BEFORE)
    back = apps.get_model("checklist", "ImmuneAdverseEvent").objects.get()
    assert (back.organ, back.grade, back.resolved) == ("skin", 2, True)
    line = apps.get_model("checklist", "TherapyLine").objects.get()
    assert (line.number, line.setting, line.types) == (0, "neoadjuvant", ["OP"])
    assert not apps.get_model("checklist", "AdverseEvent").objects.exists()
