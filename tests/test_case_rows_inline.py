"""Rows recorded in place on the case page: the row URLs answer a full page to a normal request
and the case page's section to an htmx request (`HX-Request`). A save answers the section with
the row, and out of band the factor summary, the timeline and the new case version for the
page's other open forms; errors come back in the section (422), a conflict with the changes
and the input kept (409). Without JavaScript the full-page forms work as before.

The named users: alice, a physician of practice A (the case's); bob, of practice B only."""

import re

import pytest

from checklist.models import AdverseEvent, Case, Comorbidity, Metastasis, TherapyLine
from tests.factories import LINE, post_row, set_metastasis_status

HTMX = {"HX-Request": "true"}

STAGING = {
    "staged_on": "2019-03-20",
    "kind": "pathological",
    "system": "uicc_tnm",
    "tnm_edition": "8",
    "t_prefix": "p",
    "t_category": "2",
    "n_prefix": "p",
    "n_category": "1a",
    "m_prefix": "c",
    "m_category": "0",
}
METASTASIS = {"site": "OSS", "lesions": 2, "detected_on": "2022-05-01", "timing": "metachronous"}
EVENT = {"term": "ALT increased", "ctcae_version": "5.0", "grade": 3, "onset_on": "2023-01-20"}


def htmx_post(client, case, url, data):
    """Posts as htmx does from the case page: the form's fields and the version it holds."""
    case.refresh_from_db()
    return client.post(url, {"expected_version": case.version, **data}, headers=HTMX)


def version_inputs(html):
    return re.findall(r'name="expected_version" value="(-?\d+)"', html)


def test_it_answers_a_full_page_normally_and_the_section_to_htmx_in_the_practice_only(
    alice_client, bob_client, case
):
    url = f"/cases/{case.pk}/staging/new/"
    page = alice_client.get(url).content.decode()
    assert "<html" in page and 'id="staging-form"' in page and "data-inline-form" not in page

    response = alice_client.get(url, headers=HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section class="mb-4 case-section" id="staging"')
    assert f'data-hx-post="{url}"' in fragment and "data-inline-form" in fragment
    assert "Save and add another" in fragment
    # Opening a form changes nothing: no out-of-band parts.
    assert "hx-swap-oob" not in fragment

    # bob, of another practice, gets 404 as htmx too.
    for url in [f"/cases/{case.pk}/staging/new/", f"/cases/{case.pk}/metastasis-status/"]:
        assert bob_client.get(url, headers=HTMX).status_code == 404
    response = bob_client.post(f"/cases/{case.pk}/comorbidity/new/", {"name": "x"}, headers=HTMX)
    assert response.status_code == 404


def test_without_javascript_the_full_page_forms_still_record_rows(alice_client, case):
    response = post_row(alice_client, case, "staging", STAGING)
    assert response.status_code == 302 and response.url == f"/cases/{case.pk}/#staging"
    assert set_metastasis_status(alice_client, case, "present").status_code == 302
    assert post_row(alice_client, case, "metastasis", METASTASIS).status_code == 302
    assert post_row(alice_client, case, "line", LINE).status_code == 302
    line = TherapyLine.objects.get(case=case)
    response = post_row(alice_client, case, "event", {**EVENT, "line": line.pk})
    assert response.url == f"/cases/{case.pk}/#therapy"
    assert AdverseEvent.objects.filter(line=line).count() == 1
    assert Metastasis.objects.filter(case=case).count() == 1

    # "Save and add another" without JavaScript: the next empty form, for the same line.
    second = {**EVENT, "term": "Nausea", "grade": 1, "line": line.pk, "another": "1"}
    response = post_row(alice_client, case, "event", second)
    assert response.status_code == 302
    assert response.url == f"/cases/{case.pk}/event/new/?line={line.pk}"
    page = alice_client.get(response.url).content.decode()
    assert "Saved." in page and f'<option value="{line.pk}" selected' in page


def test_an_htmx_save_answers_the_section_and_moves_the_other_forms_to_the_new_version(
    alice_client, case
):
    case.refresh_from_db()
    before = case.version
    response = htmx_post(
        alice_client, case, f"/cases/{case.pk}/comorbidity/new/", {"name": "Type 2 diabetes"}
    )
    html = response.content.decode()
    row = Comorbidity.objects.get(case=case)
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section class="mb-4 case-section" id="situation"')
    assert f'id="comorbidity-{row.pk}"' in html and "Type 2 diabetes" in html
    assert f'data-focus="comorbidity-{row.pk}"' in html  # app.js moves the focus there
    assert "Saved." in html
    assert 'id="completeness"' in html and 'id="timeline"' in html
    assert '<span id="case-version" data-hx-swap-oob="true">' in html
    # Forms opened at the version this save started from move to the new one; others stay.
    assert (
        f'value="{before + 1}" data-hx-swap-oob="outerHTML:input[name=expected_version]'
        f"[value='{before}']\"" in html
    )
    # The message was shown here, not again on the next page.
    assert "Saved." not in alice_client.get(f"/cases/{case.pk}/").content.decode()


def test_save_and_add_another_answers_the_section_with_a_new_empty_form(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    line = TherapyLine.objects.get(case=case)
    response = htmx_post(
        alice_client,
        case,
        f"/cases/{case.pk}/event/new/",
        {**EVENT, "line": line.pk, "another": "1"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert AdverseEvent.objects.filter(line=line).count() == 1
    # The new form opens in the card of the same line, empty, at the new version.
    card = html[html.index(f'id="line-{line.pk}"') :]
    assert "data-inline-form" in card and 'data-focus="event-form"' in html
    assert 'name="term" value=' not in card
    case.refresh_from_db()
    assert str(case.version) in version_inputs(card)


def test_an_adverse_event_form_opens_in_the_card_of_its_line(alice_client, case):
    post_row(alice_client, case, "line", LINE)
    post_row(alice_client, case, "line", {**LINE, "number": 2, "position": "later_advanced"})
    first, second = TherapyLine.objects.filter(case=case).order_by("number")
    html = alice_client.get(
        f"/cases/{case.pk}/event/new/?line={second.pk}", headers=HTMX
    ).content.decode()
    assert html.index(f'id="line-{second.pk}"') < html.index("data-inline-form")
    assert html.index(f'id="line-{first.pk}"') < html.index(f'id="line-{second.pk}"')
    # A line that is not the case's opens the form under the section, never nowhere.
    html = alice_client.get(f"/cases/{case.pk}/event/new/?line=999999", headers=HTMX)
    assert "data-inline-form" in html.content.decode()


def test_an_invalid_htmx_post_answers_422_with_the_errors_and_the_input_kept(alice_client, case):
    case.refresh_from_db()
    opened_at = case.version
    # Meanwhile the case moved on (here: by the same user in another tab).
    post_row(alice_client, case, "medication", {"name": "Apixaban", "kind": "anticoagulant"})
    response = alice_client.post(
        f"/cases/{case.pk}/comorbidity/new/",
        {"expected_version": opened_at, "name": "", "note": "on metformin"},
        headers=HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "This field is required." in html and "on metformin" in html
    assert 'data-focus="comorbidity-form"' in html and "hx-swap-oob" not in html
    # The form keeps the version it was opened at: the change since is not skipped over.
    form = html[html.index('id="comorbidity-form"') :]
    assert version_inputs(form)[0] == str(opened_at)
    assert not Comorbidity.objects.filter(case=case).exists()


def test_a_conflict_answers_409_with_the_changes_and_the_input_at_the_current_version(
    alice_client, case
):
    case.refresh_from_db()
    opened_at = case.version
    post_row(alice_client, case, "medication", {"name": "Apixaban", "kind": "anticoagulant"})
    response = alice_client.post(
        f"/cases/{case.pk}/comorbidity/new/",
        {"expected_version": opened_at, "name": "Type 2 diabetes"},
        headers=HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 409 and "<html" not in html
    assert 'data-testid="changes-since"' in html and "medication" in html
    assert "Type 2 diabetes" in html and "Save again" in html
    case.refresh_from_db()
    form = html[html.index('id="comorbidity-form"') :]
    assert version_inputs(form)[0] == str(case.version)
    assert not Comorbidity.objects.filter(case=case).exists()
    # No other form is moved on by a save that did not happen.
    assert "outerHTML:input[name=expected_version]" not in html


def test_the_metastasis_status_is_set_in_place(alice_client, case):
    url = f"/cases/{case.pk}/metastasis-status/"
    html = alice_client.get(url, headers=HTMX).content.decode()
    assert html.lstrip().startswith('<section class="mb-4 case-section" id="metastases"')
    assert 'id="metastasis-status-form"' in html and f'data-hx-post="{url}"' in html

    response = htmx_post(alice_client, case, url, {"metastasis_status": "none_known"})
    assert response.status_code == 422  # "none known" needs a date and a method
    assert "needs the date of the assessment" in response.content.decode()

    response = htmx_post(alice_client, case, url, {"metastasis_status": "present"})
    html = response.content.decode()
    assert response.status_code == 200 and "data-hx-swap-oob" in html
    assert 'data-focus="metastasis-status"' in html and "metastasis-status-form" not in html
    assert Case.objects.get(pk=case.pk).metastasis_status == "present"
    # Without JavaScript: the full page and a redirect, as before.
    assert "<html" in alice_client.get(url).content.decode()


def test_no_prior_therapy_and_immune_not_assessed_are_stated_in_place(alice_client, case):
    response = htmx_post(
        alice_client, case, f"/cases/{case.pk}/prior-therapy/", {"no_prior_therapy": "on"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="mb-4 case-section" id="therapy"')
    assert 'data-testid="no-prior-therapy"' in html and "data-hx-swap-oob" in html

    response = htmx_post(
        alice_client, case, f"/cases/{case.pk}/immune-not-assessed/", {"value": "on"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="mb-4 case-section" id="immune"')
    assert "Withdraw “not assessed”" in html
    case.refresh_from_db()
    assert case.no_prior_therapy and case.immune_not_assessed


@pytest.mark.parametrize("n", [1, 20])
def test_opening_an_inline_form_needs_the_same_queries_for_1_and_20_rows(
    alice_client, case, django_assert_num_queries, n
):
    for i in range(n):
        post_row(alice_client, case, "comorbidity", {"name": f"Condition {i}"})
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
    # 4 the case, 5 the record in one round trip (record.fetch_rows: one SELECT per kind of
    # row, tumours to genomic findings, and the code lists the labels come from).
    with django_assert_num_queries(6):
        response = alice_client.get(f"/cases/{case.pk}/comorbidity/new/", headers=HTMX)
    assert response.status_code == 200


def test_the_case_header_is_edited_in_place(alice_client, case):
    url = f"/cases/{case.pk}/edit/"
    html = alice_client.get(url, headers=HTMX).content.decode()
    assert html.lstrip().startswith('<header class="case-header case-section mb-3" id="header"')
    assert 'id="header-form"' in html and f'data-hx-post="{url}"' in html
    data = {
        "label": "BC-1",
        "year_of_birth": 1965,
        "sex": "female",
        "situation": "recurrence",
        "unknown_primary": "on",
    }
    response = htmx_post(alice_client, case, url, {**data, "year_of_birth": 1800})
    assert response.status_code == 422 and "Give a year between 1900" in response.content.decode()

    response = htmx_post(alice_client, case, url, data)
    html = response.content.decode()
    assert response.status_code == 200 and 'data-focus="case-label"' in html
    assert "header-form" not in html
    # The tumour section states the unknown primary from the case: it comes along.
    tumours = html[html.index('<section class="mb-4 case-section" id="tumours"') :]
    assert tumours[: tumours.index(">")].endswith('data-hx-swap-oob="true"')
    assert "Cancer of unknown primary" in html
    case.refresh_from_db()
    assert case.situation == "recurrence" and case.unknown_primary
    # Without JavaScript: the full-page form, as before.
    assert "<html" in alice_client.get(url).content.decode()
