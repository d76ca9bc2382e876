"""The metastasis status follows the rows (issue 13): a new metastasis row states that
metastases are present, audited as a change of the case; "none known" with rows asks to remove
them first; a status save says "Saved.". And the case page's documentation gap "stage recorded
before metastases".

Self-contained helpers, so the file also runs against older trees."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.messages import get_messages
from django.utils import timezone

from checklist.models import AuditEvent, Case

STAGING = {
    "kind": "clinical",
    "system": "uicc_tnm",
    "tnm_edition": "8",
    "t_prefix": "c",
    "t_category": "2",
    "n_prefix": "c",
    "n_category": "0",
    "m_prefix": "c",
    "m_category": "0",
}


def _day(days_ago: int) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


def _post(client, case, path, data):
    case.refresh_from_db()
    return client.post(f"/cases/{case.pk}/{path}", {**data, "expected_version": case.version})


def _metastasis(client, case, site="HEP", days_ago=100):
    data = {"site": site, "detected_on": _day(days_ago), "timing": "metachronous"}
    return _post(client, case, "metastasis/new/", data)


def _staging(client, case, days_ago):
    return _post(client, case, "staging/new/", {**STAGING, "staged_on": _day(days_ago)})


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _status_events(case):
    return [
        e
        for e in AuditEvent.objects.filter(
            practice_id=case.practice_id, table_name="checklist_case", op="UPDATE", row_id=case.pk
        ).order_by("seq")
        if "metastasis_status" in (e.new_values or {})
    ]


def test_a_metastasis_row_sets_the_status_to_present_audited_with_a_message(
    alice, alice_client, case
):
    response = _metastasis(alice_client, case)
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.metastasis_status == "present"
    assert "Metastasis status set to “metastases present”." in _messages(response)
    [event] = _status_events(case)
    assert event.old_values["metastasis_status"] == ""
    assert event.new_values["metastasis_status"] == "present"
    assert (event.actor_id, event.case_id) == (alice.pk, case.pk)
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert 'data-group="metastases" data-state="recorded"' in page
    # A second row changes the status no more, and says nothing about it.
    second = _metastasis(alice_client, case, site="OSS")
    assert not any("Metastasis status" in m for m in _messages(second))
    assert len(_status_events(case)) == 1


def test_a_status_of_not_assessed_follows_the_row_too(alice_client, case):
    _post(alice_client, case, "metastasis-status/", {"metastasis_status": "not_assessed"})
    _metastasis(alice_client, case)
    case.refresh_from_db()
    assert case.metastasis_status == "present"


def test_none_known_with_rows_asks_to_remove_them_first(alice_client, case):
    _metastasis(alice_client, case)
    _metastasis(alice_client, case, site="OSS")
    response = _post(
        alice_client,
        case,
        "metastasis-status/",
        {
            "metastasis_status": "none_known",
            "metastasis_assessed_on": _day(5),
            "metastasis_assessment_method": "ct",
        },
    )
    assert response.status_code == 200
    assert (
        "2 metastasis rows are recorded for this case. Remove them first (Delete beside each"
        " row), then set “no metastases known”."
    ) in response.content.decode()
    case.refresh_from_db()
    assert case.metastasis_status == "present"


def test_setting_a_status_says_saved(alice_client, case):
    response = _post(alice_client, case, "metastasis-status/", {"metastasis_status": "present"})
    assert response.status_code == 302
    assert "Saved." in _messages(response)
    assert Case.objects.get(pk=case.pk).metastasis_status == "present"


def _gap(client, case) -> str:
    html = client.get(f"/cases/{case.pk}/").content.decode()
    start = html.find('data-testid="timing-gaps"')
    return html[start : html.find("</ul>", start)] if start >= 0 else ""


def test_the_stage_before_metastases_gap_appears_and_a_newer_staging_closes_it(alice_client, case):
    _staging(alice_client, case, days_ago=400)
    assert _gap(alice_client, case) == ""  # no metastases
    _metastasis(alice_client, case, days_ago=100)
    gap = _gap(alice_client, case)
    assert "stage recorded before metastases" in gap
    assert f"staged {_day(400)}, first metastasis {_day(100)}" in gap
    _staging(alice_client, case, days_ago=50)
    assert _gap(alice_client, case) == ""


def test_a_staging_on_the_day_of_the_first_metastasis_closes_the_gap(alice_client, case):
    _staging(alice_client, case, days_ago=400)
    _metastasis(alice_client, case, site="OSS", days_ago=30)
    _metastasis(alice_client, case, days_ago=100)
    assert f"first metastasis {_day(100)}" in _gap(alice_client, case)
    _staging(alice_client, case, days_ago=100)
    assert _gap(alice_client, case) == ""
