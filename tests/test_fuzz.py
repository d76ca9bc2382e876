"""Random valid and invalid posts to every case form and odd query strings never give a 500
(the unit conversion's properties are tested with the findings, in test_case_rows.py)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checklist.views.case_rows import ROW_KINDS
from tests.factories import make_note

FIELD_VALUES = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "",
            "on",
            "IDC",
            "X",
            "pT2",
            "uicc_tnm",
            "binet",
            "none_known",
            "1e9/L",
            "%",
            "result",
            "2",
            "5",
            "HO",
            "CH",
            "-1",
            "NaN",
            "1e400",
            "\x00",
        ]
    ),
)

FIELDS = sorted(
    {name for kind in ROW_KINDS.values() for name in kind.form.base_fields}
    | {
        "oncotree",
        "types",
        "site",
        "t_category",
        "n_category",
        "m_category",
        "uicc_stage",
        "neutrophils_unit",
        "lymphocytes_unit",
        "line",
        "category",
        "intent",
        "end_reason",
        "label",
        "year_of_birth",
        "sex",
        "situation",
        "metastasis_status",
        "expected_version",
    }
)


@pytest.mark.parametrize("kind", sorted(ROW_KINDS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=12))
def test_row_forms_never_fail_with_a_server_error(alice_client, case, kind, data):
    response = alice_client.post(f"/cases/{case.pk}/{kind}/new/", data)
    assert response.status_code in (200, 302, 400, 409)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=12))
def test_case_forms_never_fail_with_a_server_error(alice_client, case, data):
    for url in (
        "/cases/new/",
        f"/cases/{case.pk}/edit/",
        f"/cases/{case.pk}/metastasis-status/",
        f"/cases/{case.pk}/prior-therapy/",
    ):
        assert alice_client.post(url, data).status_code in (200, 302, 400, 409)


@pytest.mark.parametrize(
    "url",
    [
        "/cases/?sort=-updated&after=garbage|1",
        "/cases/?sort=-updated&after=2024-13-45T00:00:00|1",
        "/cases/?sort=label&after=x|²",
        "/audit/?user=²",
        "/audit/?case=²",
        "/audit/?before=²",
        "/audit/?before=99999999999999999999999",
        "/audit/reports/?days=1000000000000",
        "/notes/1/?v=²",
        "/notes/1/?v=99999999",
    ],
)
def test_odd_query_strings_never_fail_with_a_server_error(adam_client, alice, case, url):
    make_note(case, alice)
    assert adam_client.get(url).status_code in (200, 400, 403, 404)


def test_a_garbage_version_to_move_to_is_400(alice_client, case):
    assert (
        alice_client.post(f"/cases/{case.pk}/checklist/move/", {"version": "abc"}).status_code
        == 400
    )
