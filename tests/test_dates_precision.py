"""Clinical dates with the precision the source has: a day, a month or a year, typed as such,
stored as the first day plus its precision, and shown as such everywhere (page, note, trail),
never padded to a day that was never recorded."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from checklist import notes, rules
from checklist.forms import parse_partial_date
from checklist.models import AuditEvent, Tumour, precise_date_fields
from checklist.notes import render_text
from tests.factories import post_row

TUMOUR = {"oncotree": "Breast Invasive Ductal Carcinoma (IDC)", "laterality": "left"}


@pytest.mark.parametrize(
    ("typed", "value", "precision"),
    [
        ("2021-02-14", date(2021, 2, 14), "day"),
        ("14.02.2021", date(2021, 2, 14), "day"),
        ("4.2.2021", date(2021, 2, 4), "day"),
        ("2021-02", date(2021, 2, 1), "month"),
        ("02/2021", date(2021, 2, 1), "month"),
        ("2/2021", date(2021, 2, 1), "month"),
        ("02.2021", date(2021, 2, 1), "month"),
        ("2021", date(2021, 1, 1), "year"),
        (" 2021-02 ", date(2021, 2, 1), "month"),
    ],
)
def test_it_reads_a_day_a_month_or_a_year(typed, value, precision):
    assert parse_partial_date(typed) == rules.PartialDate(value, precision)


@pytest.mark.parametrize(
    "typed",
    ["02/14/2021", "2021-13", "2021-02-30", "14.02.21", "21", "13/2021", "feb 2021", "1899", ""],
)
def test_it_refuses_what_names_no_day_month_or_year(typed):
    """A month-first day, a two-digit year or an impossible day is never guessed."""
    assert parse_partial_date(typed) is None


def _tumour(client, case, diagnosed_on, row=None):
    return post_row(client, case, "tumour", {**TUMOUR, "diagnosed_on": diagnosed_on}, row)


def test_a_month_is_stored_as_its_first_day_with_its_precision(alice_client, case):
    assert _tumour(alice_client, case, "2021-02").status_code == 302
    tumour = Tumour.objects.get()
    assert (tumour.diagnosed_on, tumour.diagnosed_on_precision) == (date(2021, 2, 1), "month")


def test_a_german_physician_types_days_and_months_the_german_way(alice_client, case):
    alice_client.cookies["django_language"] = "de"
    assert _tumour(alice_client, case, "02/2021").status_code == 302
    tumour = Tumour.objects.get()
    assert tumour.partial("diagnosed_on") == rules.PartialDate(date(2021, 2, 1), "month")
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "02/2021" in page and "01.02.2021" not in page
    # The edit form shows the month as it was typed, not a padded day.
    form = alice_client.get(f"/cases/{case.pk}/tumour/{tumour.pk}/").content.decode()
    assert 'value="02/2021"' in form


def test_the_case_page_shows_a_month_and_a_year_never_a_padded_day(alice_client, case):
    _tumour(alice_client, case, "2021-02")
    post_row(alice_client, case, "comorbidity", {"name": "Diabetes", "since": "2015"})
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "2021-02" in page and "2021-02-01" not in page
    assert "since 2015)" in page and "2015-01-01" not in page


def test_a_typed_day_that_is_no_day_comes_back_with_the_text_kept(alice_client, case):
    response = _tumour(alice_client, case, "2021-02-30")
    assert response.status_code == 200  # the form again, with the error
    body = response.content.decode()
    assert 'value="2021-02-30"' in body
    assert "Enter a day (YYYY-MM-DD), a month (YYYY-MM) or a year (YYYY)." in body
    assert not Tumour.objects.exists()


def test_this_month_is_not_in_the_future_but_next_year_is(alice_client, case):
    today = timezone.localdate()
    assert _tumour(alice_client, case, today.strftime("%Y-%m")).status_code == 302
    response = _tumour(alice_client, case, str(today.year + 1))
    assert response.status_code == 200  # the form again, with the error
    assert "This date is in the future." in response.content.decode()


def test_a_year_before_the_year_of_birth_is_refused_but_the_year_of_birth_is_not(
    alice_client, case
):
    before_birth = str(case.year_of_birth - 1)
    assert _tumour(alice_client, case, before_birth).status_code == 200  # the form again
    assert _tumour(alice_client, case, str(case.year_of_birth)).status_code == 302


def test_the_database_refuses_a_month_stored_on_another_day_than_the_first(case):
    tumour = Tumour(
        practice=case.practice,
        case=case,
        oncotree_code="IDC",
        oncotree_name="x",
        oncotree_release="x",
        laterality="left",
        diagnosed_on=date(2021, 2, 14),
        diagnosed_on_precision="month",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        tumour.save()
    tumour.diagnosed_on_precision = "week"
    with pytest.raises(IntegrityError), transaction.atomic():
        tumour.save()


def test_every_clinical_date_of_a_row_has_a_precision():
    """The dates the issue names: diagnosis, staging, biomarker, metastasis, lines, adverse
    events, findings, steroid start, comorbidities, organ function."""
    from django.apps import apps

    expected = {
        "tumour": {"diagnosed_on"},
        "stagingrecord": {"staged_on"},
        "biomarker": {"sampled_on"},
        "metastasis": {"detected_on"},
        "therapyline": {"started_on", "ended_on"},
        "adverseevent": {"onset_on"},
        "performancestatus": {"assessed_on"},
        "immunefinding": {"assessed_on", "steroid_since"},
        "comorbidity": {"since"},
        "organfunction": {"measured_on"},
    }
    for model_name, names in expected.items():
        model = apps.get_model("checklist", model_name)
        assert names <= set(precise_date_fields(model)), model_name


def test_the_note_and_its_markdown_show_the_month(alice_client, case, alice):
    from tests.factories import create_note, make_signable

    make_signable(alice_client, case)
    tumour = Tumour.objects.get()
    post_row(alice_client, case, "tumour", {**TUMOUR, "diagnosed_on": "2021-02"}, tumour)
    note_pk = create_note(alice_client, case)
    from checklist.models import BoardNoteVersion

    version = BoardNoteVersion.objects.get(note_id=note_pk)
    snapshot = notes.build_snapshot(version, language="en")
    with translation.override("en"):
        text = render_text(snapshot, version, language="en")
    assert "2021-02" in text and "2021-02-01" not in text


def test_the_trail_shows_a_month_as_a_month_when_only_the_precision_changed(
    alice_client, adam_client, case
):
    _tumour(alice_client, case, "2021-02-01")
    tumour = Tumour.objects.get()
    # Same stored day, now known only to the month: the trigger records date and precision.
    _tumour(alice_client, case, "2021-02", tumour)
    update = AuditEvent.objects.filter(
        table_name="checklist_tumour", op="UPDATE", row_id=str(tumour.pk)
    ).get()
    assert update.new_values == {"diagnosed_on": "2021-02-01", "diagnosed_on_precision": "month"}
    html = adam_client.get(f"/audit/?case={case.label}&kind=change").content.decode()
    assert "2021-02-01" in html  # the old value: a day
    assert ">2021-02<" in html.replace(" ", "")  # the new value: the month
    assert "diagnosed on precision" not in html  # one value, not a separate precision row
