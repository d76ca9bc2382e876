"""Therapy episodes and the one adverse-event model, through the row forms: systemic lines
with their number and position, local and watch-and-wait episodes without, the soft
contradictions the physician confirms, grade 5 only with a date of death, immune-related
events entered once and shown in the therapy and the immune section."""

from __future__ import annotations

import re
import subprocess

import pytest
from django.core.exceptions import ValidationError

from checklist import services
from checklist.models import AdverseEvent, TherapyLine
from tests.factories import LINE, post_row

RADIOTHERAPY = {
    "kind": "radiotherapy",
    "types": ["ST"],
    "regimen": "SBRT 3 × 15 Gy",
    "intent": "P",
    "started_on": "2021-09",
    "ended_on": "2021-09",
}
EVENT = {"term": "Colitis", "ctcae_version": "5.0", "grade": "3"}


def _page(client, case):
    return client.get(f"/cases/{case.pk}/").content.decode()


def _section(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    return page[start : page.index("</section>", start)]


def test_a_local_episode_has_no_number_and_reads_kind_and_month(alice_client, case):
    assert post_row(alice_client, case, "line", RADIOTHERAPY).status_code == 302
    episode = TherapyLine.objects.get()
    assert (episode.kind, episode.number, episode.started_on_precision) == (
        "radiotherapy",
        None,
        "month",
    )
    therapy = _section(_page(alice_client, case), "therapy")
    assert "Radiotherapy · 2021-09" in therapy
    assert "Line" not in therapy.split('data-testid="episode-label"')[1].split("</h3>")[0]
    assert "2021-09-01" not in therapy


def test_a_systemic_line_reads_its_number_and_position(alice_client, case):
    post_row(alice_client, case, "line", {**LINE, "position": "maintenance"})
    page = _page(alice_client, case)
    assert "Line 1 · maintenance" in page and "maintenance 1" not in page


def test_the_database_refuses_a_number_on_a_local_episode_and_none_on_a_line(case):
    from django.db import IntegrityError, transaction

    row = {"case": case, "practice_id": case.practice_id, "started_on": "2021-01-01"}
    with pytest.raises(IntegrityError), transaction.atomic():
        TherapyLine.objects.create(**row, kind="surgery", number=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        TherapyLine.objects.create(**row, kind="systemic", number=None)


def test_two_lines_with_one_number_are_a_warning_the_physician_confirms(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    second = {**LINE, "regimen": "Fulvestrant", "started_on": "2022-04-01", "ended_on": ""}
    second["end_reason"] = ""
    response = post_row(alice_client, case, "line", {**second, "ongoing": "on"})
    assert b"Another systemic line of this case has number 1." in response.content
    assert b'name="confirm_values"' in response.content
    assert TherapyLine.objects.count() == 1
    response = post_row(
        alice_client, case, "line", {**second, "ongoing": "on", "confirm_values": "on"}
    )
    assert response.status_code == 302 and TherapyLine.objects.count() == 2
    # A local episode has no number to share.
    assert post_row(alice_client, case, "line", RADIOTHERAPY).status_code == 302


def test_an_ongoing_episode_with_an_end_date_is_a_warning(alice_client, case):
    data = {**LINE, "ongoing": "on", "end_reason": ""}
    response = post_row(alice_client, case, "line", data)
    assert b"The episode is marked ongoing but has an end date." in response.content
    assert not TherapyLine.objects.exists()
    assert post_row(alice_client, case, "line", {**data, "confirm_values": "on"}).status_code == 302
    line = TherapyLine.objects.get()
    assert line.ongoing and line.ended_on is not None


def test_a_regular_end_with_an_event_that_led_to_stop_is_a_warning(alice_client, case):
    post_row(alice_client, case, "line", LINE)  # ended by progression
    line = TherapyLine.objects.get()
    event = {**EVENT, "line": line.pk, "led_to_stop": "on"}
    assert post_row(alice_client, case, "event", event).status_code == 302
    # The line's end reason changed to "regular end" (MII code E): the form asks.
    response = post_row(alice_client, case, "line", {**LINE, "end_reason": "E"}, row=line)
    assert b"an adverse event of this episode is marked" in response.content
    line.refresh_from_db()
    assert line.end_reason == "P"
    data = {**LINE, "end_reason": "E", "confirm_values": "on"}
    assert post_row(alice_client, case, "line", data, row=line).status_code == 302
    line.refresh_from_db()
    assert line.end_reason == "E"
    # And the other way round: a new event that led to stop on a line ended regularly.
    response = post_row(alice_client, case, "event", {**event, "term": "Rash"})
    assert b"the episode&#x27;s end reason says" in response.content
    assert AdverseEvent.objects.count() == 1
    data = {**event, "term": "Rash", "confirm_values": "on"}
    assert post_row(alice_client, case, "event", data).status_code == 302


def test_grade_5_needs_a_date_of_death_in_the_service_and_when_the_date_is_removed(
    alice, alice_client, case
):
    event = AdverseEvent(practice_id=case.practice_id, term="Sepsis", grade="5")
    event.ctcae_version = "5.0"
    with pytest.raises(ValidationError, match="Grade 5 means death"):
        services.case_row_save(case=case, row=event, acting_user=alice, expected_version=None)
    assert not AdverseEvent.objects.exists()
    case.deceased_on = "2023-02-01"
    case.save()
    services.case_row_save(case=case, row=event, acting_user=alice, expected_version=None)
    case.refresh_from_db()
    with pytest.raises(ValidationError, match="grade 5 adverse event"):
        services.case_update(
            case=case, data={"deceased_on": None}, acting_user=alice, expected_version=None
        )
    case.refresh_from_db()
    assert case.deceased_on is not None


def test_the_worst_grade_ignores_an_unknown_grade_and_says_so(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    line = TherapyLine.objects.get()
    for grade in ("2", "U"):
        data = {**EVENT, "line": line.pk, "grade": grade, "term": f"Event {grade}"}
        assert post_row(alice_client, case, "event", data).status_code == 302
    therapy = _section(_page(alice_client, case), "therapy")
    assert "Worst grade: G2" in therapy
    assert "1 event with unknown grade not counted" in therapy
    assert "grade unknown" in therapy


def test_an_immune_related_event_is_entered_once_and_shown_in_both_sections(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    line = TherapyLine.objects.get()
    data = {**EVENT, "line": line.pk, "immune_related": "on", "ctcae_version": "4.03"}
    assert post_row(alice_client, case, "event", data).status_code == 302
    assert post_row(alice_client, case, "event", {**EVENT, "term": "Nausea"}).status_code == 302
    page = _page(alice_client, case)
    immune, therapy = _section(page, "immune"), _section(page, "therapy")
    assert "Colitis" in immune and "Nausea" not in immune
    assert "Colitis" in therapy and "Nausea" in therapy and "CTCAE v4.03" in therapy
    # The event without an episode belongs to the case.
    assert "Adverse events not attributed to a recorded episode" in therapy
    assert AdverseEvent.objects.get(term="Nausea").line is None
    # The immune section's button opens the one form with the flag set.
    form = alice_client.get(f"/cases/{case.pk}/event/new/?immune=1").content.decode()
    assert re.search(r'name="immune_related"[^>]*checked', form)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"course": "improved"}, b"Give the grade it improved to."),
        ({"course": "resolved", "improved_to_grade": "1"}, b"belongs to the course"),
        ({"course": "improved", "improved_to_grade": "3"}, b"An improvement is to a lower grade."),
        ({"steroid_dose": "1 mg/kg"}, b"needs \xe2\x80\x9csteroids given: yes"),
        ({"ctcae_version": "4.0"}, b"Select a valid choice"),
    ],
)
def test_it_refuses_impossible_events(alice_client, case, change, message):
    response = post_row(alice_client, case, "event", {**EVENT, **change})
    assert message in response.content
    assert not AdverseEvent.objects.exists()


def test_an_old_event_without_course_reads_not_recorded(alice_client, case):
    assert post_row(alice_client, case, "event", EVENT).status_code == 302
    assert AdverseEvent.objects.get().course == "not_recorded"
    assert "course not recorded" in _section(_page(alice_client, case), "therapy")


def test_mrd_is_recorded_with_its_sensitivity_and_specimen(alice_client, case):
    data = {
        **LINE,
        "response": "CR",
        "response_criteria": "iwcll",
        "mrd": "negative",
        "mrd_sensitivity": "-4",
        "mrd_specimen": "peripheral_blood",
    }
    assert post_row(alice_client, case, "line", data).status_code == 302
    assert TherapyLine.objects.get().mrd_sensitivity == -4
    therapy = _section(_page(alice_client, case), "therapy")
    assert "MRD negative (sensitivity 10⁻⁴, peripheral blood)" in therapy


def test_several_agents_are_entered_one_per_line(alice_client, case):
    data = {**LINE, "agents": "Carboplatin\r\nPemetrexed\r\n\r\nPembrolizumab"}
    assert post_row(alice_client, case, "line", data).status_code == 302
    assert TherapyLine.objects.get().agents == ["Carboplatin", "Pemetrexed", "Pembrolizumab"]
    assert "Carboplatin, Pemetrexed, Pembrolizumab" in _page(alice_client, case)


def test_the_timeline_says_g3_and_never_ctcae_3(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    line = TherapyLine.objects.get()
    data = {**EVENT, "line": line.pk, "onset_on": "2021-05"}
    post_row(alice_client, case, "event", data)
    page = _page(alice_client, case)
    timeline = page[page.index("<svg") : page.index("</svg>")]
    assert "Colitis G3" in timeline and "CTCAE 3" not in page
    assert "Line 1 · first line for advanced disease" in timeline


# --- the case: a solid tumour after an immune-related event under steroids ---------


def _pdf_text(pdf: bytes) -> str:
    result = subprocess.run(
        ["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return re.sub(r"\s+", " ", result.stdout.decode())


def _text(html: str) -> str:
    import html as html_lib

    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", html)))


def test_pneumonitis_under_nivolumab_then_radiotherapy_round_trips_everywhere(alice_client, case):
    """Metastatic lung cancer: nivolumab as first line for advanced disease, stopped for an
    immune-related G3 pneumonitis treated with steroids, improved to G1; later a palliative
    radiotherapy without a line number. Every date is known to the month only."""
    post_row(alice_client, case, "tumour", {"oncotree": "LUAD", "laterality": "right"})
    case.refresh_from_db()
    alice_client.post(
        f"/cases/{case.pk}/metastasis-status/",
        {"metastasis_status": "present", "expected_version": case.version},
    )
    line = {
        "kind": "systemic",
        "number": 1,
        "position": "first_advanced",
        "types": ["IM"],
        "agents": "Nivolumab",
        "intent": "P",
        "started_on": "2021-02",
        "ended_on": "2021-06",
        "cycles": "8",
        "response": "PR",
        "response_criteria": "irecist",
        "end_reason": "A",
    }
    assert post_row(alice_client, case, "line", line).status_code == 302
    nivolumab = TherapyLine.objects.get()
    event = {
        "line": nivolumab.pk,
        "attributed_agent": "Nivolumab",
        "term": "Pneumonitis",
        "grade": "3",
        "ctcae_version": "5.0",
        "onset_on": "2021-05",
        "immune_related": "on",
        "steroids": "yes",
        "steroid_dose": "prednisolone 1 mg/kg",
        "steroid_started_on": "2021-05",
        "course": "improved",
        "improved_to_grade": "1",
        "led_to_stop": "on",
        "rechallenged": "no",
    }
    assert post_row(alice_client, case, "event", event).status_code == 302
    radiotherapy = {**RADIOTHERAPY, "position": "O"}
    assert post_row(alice_client, case, "line", radiotherapy).status_code == 302

    saved = AdverseEvent.objects.get()
    assert (saved.onset_on_precision, saved.steroid_started_on_precision) == ("month", "month")
    assert (saved.course, saved.improved_to_grade, saved.rechallenged) == ("improved", 1, "no")

    page = _text(_page(alice_client, case))
    for value in (
        "Line 1 · first line for advanced disease",
        "Radiotherapy · 2021-09",
        "Nivolumab",
        "Pneumonitis",
        "G3",
        "CTCAE v5.0",
        "Systemic steroids: yes, prednisolone 1 mg/kg, since 2021-05",
        "improved to G1",
        "therapy stopped",
        "rechallenged: no",
        "2021-02 – 2021-06",
        "Best response: partial response (iRECIST)",
        "Stopped for side effects",
        "Worst grade: G3",
        "SBRT 3 × 15 Gy",
        "Without relation to surgery",
    ):
        assert value in page, value
    immune = _section(_page(alice_client, case), "immune")
    assert "Pneumonitis" in immune and "prednisolone 1 mg/kg" in immune

    case.refresh_from_db()
    note = alice_client.post(
        f"/cases/{case.pk}/notes/new/",
        {
            "registering_physician": "Dr. Alice",
            "target_board": "Thoraxkonferenz",
            "board_type": "postth",
            "question": "Rechallenge with a checkpoint inhibitor?",
        },
    )
    assert note.status_code == 302, note.content[-2000:]
    base = note["Location"]
    expected = [
        "Line 1 · first line for advanced disease",
        "Radiotherapy · 2021-09",
        "Adverse event of Line 1 · first line for advanced disease",
        "Immune-related adverse event: Pneumonitis",
        "Agents Nivolumab",
        "Position in the course of therapy first line for advanced disease",
        "Start 2021-02",
        "End 2021-06",
        "Cycles 8",
        "Best response partial response",
        "Response criteria iRECIST",
        "Worst grade G3",
        "Term Pneumonitis",
        "Grade G3",
        "CTCAE version CTCAE v5.0",
        "Onset 2021-05",
        "Attributed agent Nivolumab",
        "Immune-related yes",
        "Systemic steroids given yes",
        "Steroid dose prednisolone 1 mg/kg",
        "Steroids started 2021-05",
        "Course improved to a lower grade",
        "Improved to grade G1",
        "Led to stopping the therapy yes",
        "Rechallenged no",
        "Kind of episode radiotherapy",
        "Position in the course of therapy without relation to surgery",
        "Regimen SBRT 3 × 15 Gy",
        "Start 2021-09",
    ]
    draft = _text(alice_client.get(base).content.decode())
    from tests.factories import sign_note

    note_pk = int(base.strip("/").split("/")[-1])
    assert sign_note(alice_client, note_pk).status_code == 302
    renderings = {
        "draft page": draft,
        "signed page": _text(alice_client.get(base).content.decode()),
        "PDF": _pdf_text(alice_client.get(f"{base}v1/pdf/").content),
        "Markdown": re.sub(r"\s+", " ", alice_client.get(f"{base}v1/text/").content.decode()),
    }
    for where, text in renderings.items():
        # Label and value as each rendering joins them ("Label value", "Label: value",
        # 'Label: "value"'), compared without the joining marks.
        def flat(words: str) -> str:
            return words.replace(": ", " ").replace('"', "").replace("> ", "")

        missing = [value for value in expected if flat(value) not in flat(text)]
        assert not missing, (where, missing)
        assert "2021-05-01" not in text and "2021-02-01" not in text, where
        assert "CTCAE 3" not in text, where
