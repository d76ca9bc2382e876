"""Every URL pattern: anonymous users go to the login page, and a user of practice B asking for
any object of practice A gets 404. A new pattern fails this test until it is added to the
table (tests/urls_table.py), so an unprotected view cannot slip in."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from checklist.models import Membership
from tests.factories import logged_in
from tests.urls_table import PROTECTED, PUBLIC, url_of


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
    assert not unknown, f"add these URL names to tests/urls_table.py: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_anonymous_users_are_sent_to_login(client, practice_a, alice, name):
    url = url_of(name, practice_a, alice)
    for method in (client.get, client.post):
        response = method(url, follow=True)
        assert response.redirect_chain, f"{name} answered {response.status_code} to anonymous"
        assert response.redirect_chain[-1][0].startswith("/login/"), name


@pytest.mark.parametrize("name", sorted(n for n, b in PROTECTED.items() if b))
def test_another_practice_gets_404(practice_a, alice, adam, bob, name):
    """bob (practice B) tries every object URL of practice A, once as a physician and once as a
    practice admin: never anything but 404 (or 403 for the role the view does not admit), and
    404 for the role it does admit."""
    url = url_of(name, practice_a, alice)
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
    url = url_of(name, practice_a, alice)
    for who in (logged_in(alice), logged_in(adam), client):
        for response in (who.get(url), who.get(url, HTTP_HX_REQUEST="true"), who.post(url)):
            assert "no-store" in response.get("Cache-Control", ""), (name, response.status_code)
