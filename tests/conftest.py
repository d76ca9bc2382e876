"""Shared fixtures. The named users and who may see what:

- alice: physician in practice A (the usual actor)
- adam: practice admin of practice A
- carol: physician in A and in B (switches practices)
- bob: physician in practice B only: the outsider, who must get 404 for everything of A
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from checklist.management.commands.load_codelists import load_codelists
from checklist.models import Membership
from tests.factories import logged_in, make_user

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# How far the `clock` fixture moves the clock for its second run: two years, so a date a form
# compares with today that is hard-coded in a test fails now, not in two years.
SHIFTED_DAYS = 730


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_date_only: runs only at today's date, not under the shifted `clock` (the test"
        " reads PostgreSQL's clock, which the shift does not move)",
    )


def pytest_generate_tests(metafunc):
    """A test that uses the `clock` fixture (test_notes.py and test_case_rows.py use it for
    every test) runs twice: at today's date and two years ahead."""
    if "clock" in metafunc.fixturenames:
        real_only = metafunc.definition.get_closest_marker("real_date_only")
        metafunc.parametrize(
            "clock",
            [0] if real_only else [0, SHIFTED_DAYS],
            ids=lambda days: f"today+{days}d" if days else "today",
            indirect=True,
        )


@pytest.fixture
def clock(request):
    """Python's clock moved ahead by `request.param` days for the test (ticking, so times
    still advance). PostgreSQL's clock (audit timestamps, now() in SQL) does not move: a test
    that reads it is marked `real_date_only`. Request it before any fixture that logs in:
    a session made at today's date has expired two years later."""
    days = getattr(request, "param", 0)
    if not days:
        yield timezone.localdate()
        return
    with time_machine.travel(timezone.now() + timedelta(days=days), tick=True):
        yield timezone.localdate()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # No test reads the development checkpoints under var/ (tests/test_audit_checkpoints.py
    # sets its own key and store).
    settings.AUDIT_CHECKPOINT_PUBLIC_KEY = ""
    settings.AUDIT_CHECKPOINT_STORE = "/nonexistent/oncoboard-checkpoints"


@pytest.fixture(autouse=True)
def _kept_bodies_never_query(monkeypatch):
    """A page body kept by checklist/fragments.py that queried while rendering read something
    its key cannot see: an error in every test (a warning in production)."""
    from checklist import fragments

    monkeypatch.setattr(fragments, "STRICT", True)


@pytest.fixture
def codelists(db):
    load_codelists()


@pytest.fixture
def practice_a(db):
    from checklist.services import practice_create

    return practice_create(name="Practice A")


@pytest.fixture
def practice_b(db):
    from checklist.services import practice_create

    return practice_create(name="Practice B")


@pytest.fixture
def alice(practice_a):
    return make_user("alice", practice_a, Membership.PHYSICIAN)


@pytest.fixture
def adam(practice_a):
    return make_user("adam", practice_a, Membership.PRACTICE_ADMIN)


@pytest.fixture
def bob(practice_b):
    return make_user("bob", practice_b, Membership.PHYSICIAN)


@pytest.fixture
def carol(practice_a, practice_b):
    user = make_user("carol", practice_a, Membership.PHYSICIAN)
    Membership.objects.create(practice=practice_b, user=user, role=Membership.PHYSICIAN)
    return user


@pytest.fixture
def alice_client(alice):
    return logged_in(alice)


@pytest.fixture
def adam_client(adam):
    return logged_in(adam)


@pytest.fixture
def bob_client(bob):
    return logged_in(bob)


@pytest.fixture(autouse=True)
def _rendered_pages_use_no_recommending_words(monkeypatch):
    """Every HTML page and text export the suite renders is checked for recommending words."""
    from checklist.wording import recommending_words, strip_exempt_markdown

    original = Client.request

    def checked(self, **request):
        response = original(self, **request)
        content_type = response.get("Content-Type", "")
        if not getattr(response, "streaming", False) and content_type.startswith(
            ("text/html", "text/plain", "text/markdown")
        ):
            text = response.content.decode()
            if not content_type.startswith("text/html"):
                text = strip_exempt_markdown(text)
            found = recommending_words(text, html="html" in content_type)
            assert not found, f"{request.get('PATH_INFO')} renders recommending words: {found}"
        return response

    monkeypatch.setattr(Client, "request", checked)


@pytest.fixture
def case(practice_a, alice, codelists):
    from checklist.models import Case

    return Case.objects.create(
        practice=practice_a,
        label="BC-1",
        year_of_birth=1965,
        sex="female",
        situation="first_diagnosis",
        created_by=alice,
    )
