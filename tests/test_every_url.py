"""Every URL pattern: anonymous users go to the login page, and a user of practice B asking for
any object of practice A gets 404. A new pattern fails this test until it is added to the
table, so an unprotected view cannot slip in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from checklist.models import Case, Category, Membership, Tumour
from checklist.services import catalogue_draft_create, note_create

PUBLIC = {"login", "logout", "healthz", "set_password", "set_language"}


def _case(practice_a, alice) -> dict[str, Any]:
    return {"pk": Case.objects.create(practice=practice_a, label="A-1", **Case.MINIMAL).pk}


def _membership(practice_a, alice) -> dict[str, Any]:
    return {"pk": Membership.objects.get(user=alice).pk}


def _row(kind: str, factory: Callable[[Case], Any]) -> Callable[..., dict[str, Any]]:
    def build(practice_a, alice) -> dict[str, Any]:
        case = Case.objects.create(practice=practice_a, label=f"A-{kind}", **Case.MINIMAL)
        return {"pk": case.pk, "kind": kind, "row_pk": factory(case).pk}

    return build


def _tumour(case: Case) -> Any:
    return Tumour.objects.create(
        case=case,
        practice_id=case.practice_id,
        oncotree_code="IDC",
        oncotree_name="Breast Invasive Ductal Carcinoma",
        oncotree_release="x",
        laterality="left",
    )


def _case_kind(kind: str) -> Callable[..., dict[str, Any]]:
    def build(practice_a, alice) -> dict[str, Any]:
        return {**_case(practice_a, alice), "kind": kind}

    return build


def _case_category(practice_a, alice) -> dict[str, Any]:
    category = Category.objects.filter(practice=practice_a).first()
    return {**_case(practice_a, alice), "category_pk": category.pk}  # type: ignore[union-attr]


def _catalogue_version(practice_a, alice) -> dict[str, Any]:
    # A number that exists only in practice A (B has version 1 too: a draft 2 exists only in A).
    draft = catalogue_draft_create(practice=practice_a)
    return {"number": draft.number}


def _catalogue_category(practice_a, alice) -> dict[str, Any]:
    draft = catalogue_draft_create(practice=practice_a)
    return {"number": draft.number, "category_pk": draft.categories.first().pk}  # type: ignore[union-attr]


def _catalogue_category_action(practice_a, alice) -> dict[str, Any]:
    return {**_catalogue_category(practice_a, alice), "action": "up"}


def _note(practice_a, alice) -> dict[str, Any]:
    case = Case.objects.create(practice=practice_a, label="A-note", **Case.MINIMAL)
    version = note_create(
        case=case,
        acting_user=alice,
        data={
            "registering_physician": "x",
            "target_board": "x",
            "board_type": "postth",
            "question": "q",
        },
    )
    return {"pk": version.note_id}


def _note_version(practice_a, alice) -> dict[str, Any]:
    return {**_note(practice_a, alice), "number": 1}


# name -> builder of kwargs naming an object of practice A, or None when the URL names none.
PROTECTED: dict[str, Callable[..., dict[str, Any]] | None] = {
    "home": None,
    "case_list": None,
    "practice_switch": None,
    "account_list": None,
    "account_create": None,
    "account_edit": _membership,
    "account_link": _membership,
    "case_create": None,
    "case_detail": _case,
    "case_edit": _case,
    "case_metastasis_status": _case,
    "case_prior_therapy": _case,
    "case_row_create": _case_kind("tumour"),
    "case_row_edit": _row("tumour", _tumour),
    "case_row_delete": _row("tumour", _tumour),
    "oncotree_search": None,
    "checklist": _case,
    "checklist_item": _case_category,
    "checklist_move": _case,
    "catalogue_list": None,
    "catalogue_draft": None,
    "catalogue_diff": None,
    "catalogue_version": _catalogue_version,
    "catalogue_category_new": _catalogue_version,
    "catalogue_category": _catalogue_category,
    "catalogue_category_action": _catalogue_category_action,
    "catalogue_publish": _catalogue_version,
    "catalogue_discard": _catalogue_version,
    "note_create": _case,
    "case_immune_not_assessed": _case,
    "note_list": None,
    "note_detail": _note,
    "note_edit": _note,
    "note_ready": _note,
    "note_sign": _note,
    "note_amend": _note,
    "outcome_create": _note,
    "note_print": _note_version,
    "note_pdf": _note_version,
    "note_text": _note_version,
    "case_history": _case,
    "audit_trail": None,
    "audit_export": None,
    "audit_reports": None,
    "audit_chain": None,
}


def _names(resolver: URLResolver | None = None) -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            names |= _names(entry)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(entry.name)
    return names


def test_every_pattern_is_in_the_table():
    unknown = _names() - PUBLIC - set(PROTECTED)
    assert not unknown, f"add these URL names to tests/test_every_url.py: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_anonymous_users_are_sent_to_login(client, practice_a, alice, name):
    builder = PROTECTED[name]
    url = reverse(name, kwargs=builder(practice_a, alice) if builder else None)
    for method in (client.get, client.post):
        response = method(url, follow=True)
        assert response.redirect_chain, f"{name} answered {response.status_code} to anonymous"
        assert response.redirect_chain[-1][0].startswith("/login/"), name


@pytest.mark.parametrize("name", sorted(n for n, b in PROTECTED.items() if b))
def test_another_practice_gets_404(practice_a, alice, adam, bob, name):
    """bob (practice B) tries every object URL of practice A, once as a physician and once as a
    practice admin: never anything but 404 (or 403 for the role the view does not admit), and
    404 for the role it does admit."""
    from tests.conftest import logged_in

    url = reverse(name, kwargs=PROTECTED[name](practice_a, alice))  # type: ignore[misc]
    statuses = set()
    for role in (Membership.PHYSICIAN, Membership.PRACTICE_ADMIN):
        Membership.objects.filter(user=bob).update(role=role)
        client = logged_in(bob)
        for method in (client.get, client.post):
            status = method(url).status_code
            assert status in (403, 404, 405), f"{name} as {role}: {status}"
            statuses.add(status)
    assert 404 in statuses, name


def test_public_urls_answer_without_login(client, db):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("healthz")).status_code == 200
    response = client.get(reverse("set_password", kwargs={"uidb64": "x", "token": "y"}))
    assert response.status_code == 200
    assert b"no longer valid" in response.content


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_no_response_may_be_cached(practice_a, alice, adam, client, name):
    """Pages, print views, PDFs, exports and htmx fragments carry patient data: every response
    (to the physician, the admin, an htmx request and an anonymous visitor) says no-store."""
    from tests.conftest import logged_in

    builder = PROTECTED[name]
    url = reverse(name, kwargs=builder(practice_a, alice) if builder else None)
    for who in (logged_in(alice), logged_in(adam), client):
        for response in (who.get(url), who.get(url, HTTP_HX_REQUEST="true"), who.post(url)):
            assert "no-store" in response.get("Cache-Control", ""), (name, response.status_code)
