"""Hostile input never gives a 500: every query parameter and small POST a view reads goes
through a form, NUL is refused before any view, and a bad parameter is a 400 or a form error.

The generated test walks every URL of the every-URL table (tests/urls_table.py) with
generated query strings and form bodies: NUL and other control characters, huge numbers,
impossible dates and very long strings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checklist.models import Case, Category, ChecklistItem, Membership
from tests.factories import logged_in
from tests.urls_table import PROTECTED, url_of

# Every parameter name a view reads, and a few it does not.
PARAMETERS = [
    "q", "situation", "tumour", "complete", "sort", "after", "oncotree", "user", "case",
    "kind", "table", "date_from", "date_to", "before", "days", "state", "v", "a", "b",
    "line", "version", "practice", "status", "note", "revision", "expected_version",
    "case_version", "value", "label", "year_of_birth", "password", "source", "x",
]  # fmt: skip

hostile_text = st.one_of(
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\r\n\f\x0b\x1b",
            "\u202e\u2066",
            "2024-02-30",
            "2024-13-45",
            "9999999999999999999999999999",
            "-1",
            "1e308",
            "²",
            "x" * 5000,
            "garbage|1",
            "2024-13-45T00:00:00|1",
        ]
    ),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
parameters = st.dictionaries(st.sampled_from(PARAMETERS), hostile_text, max_size=6)


def _client_for(name: str, alice, adam):
    """The role the view admits, so the request reaches the view's own parsing."""
    admin_only = name.startswith(("account_", "audit_", "catalogue_")) and name not in (
        "catalogue_list",
        "catalogue_version",
        "catalogue_diff",
    )
    return logged_in(adam if admin_only else alice)


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_generated_parameters_never_give_a_server_error(practice_a, alice, adam, codelists, name):
    url = url_of(name, practice_a, alice)
    client = _client_for(name, alice, adam)

    @settings(
        max_examples=8,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(query=parameters, body=parameters)
    def run(query, body):
        assert client.get(url, query).status_code < 500, (url, query)
        assert client.post(url, body).status_code < 500, (url, body)

    run()


# The requests of the security test that got a 500 before.
@pytest.mark.parametrize(
    "url",
    [
        "/cases/?q=a%00b",
        "/cases/?situation=%00",
        "/cases/?tumour=%00",
        "/oncotree/search/?q=br%00",
        "/oncotree/search/?oncotree=br%00",
        "/audit/?case=%00",
        "/audit/?table=%00",
        "/audit/export.csv?case=%00",
        "/audit/export.csv?table=%00",
        "/audit/?date_from=2024-02-30",
        "/audit/?date_to=2024-13-45",
        "/audit/export.csv?date_from=2024-02-30",
        "/audit/reports/?date_from=2024-02-30",
        "/audit/reports/?date_to=2024-13-45",
    ],
)
def test_the_reported_requests_are_400(adam_client, codelists, url):
    response = adam_client.get(url)
    assert response.status_code == 400, url
    assert b"Request not understood" in response.content


def test_a_bad_date_names_the_parameter(adam_client):
    response = adam_client.get("/audit/?date_from=2024-02-30")
    assert response.status_code == 400
    assert b"<code>date_from</code>" in response.content


def test_a_nul_in_the_checklist_note_saves_nothing(alice_client, case):
    category = Category.objects.filter(practice=case.practice).first()
    response = alice_client.post(
        f"/cases/{case.pk}/checklist/{category.pk}/",  # type: ignore[union-attr]
        {"status": "raise", "note": "a\x00b", "revision": 0},
    )
    assert response.status_code == 400
    assert not ChecklistItem.objects.filter(checklist__case=case).exists()


def test_a_note_over_the_limit_is_refused_not_cut(alice_client, case):
    category = Category.objects.filter(practice=case.practice).first()
    assert category is not None
    response = alice_client.post(
        f"/cases/{case.pk}/checklist/{category.pk}/",
        {"status": "raise", "note": "x" * 4001, "revision": 0},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200  # the refusal goes into the card's status line
    assert "at most 4000 characters" in response.content.decode()
    assert not ChecklistItem.objects.filter(checklist__case=case).exists()


def test_valid_filters_still_filter(adam_client, alice, case):
    Case.objects.create(practice=case.practice, label="ZZ-9", **Case.MINIMAL)
    page = adam_client.get("/cases/?q=ZZ&situation=&sort=-updated").content.decode()
    assert "ZZ-9" in page and "BC-1" not in page
    assert adam_client.get("/audit/reports/?days=3&date_from=2024-01-01").status_code == 200
    assert Membership.objects.filter(user=alice).exists()
