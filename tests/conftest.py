"""Shared fixtures. The named users and who may see what:

- alice: physician in practice A (the usual actor)
- adam: practice admin of practice A
- carol: physician in A and in B (switches practices)
- bob: physician in practice B only: the outsider, who must get 404 for everything of A
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from checklist.management.commands.load_codelists import load_codelists
from checklist.models import Membership, Practice

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

PASSWORD = "correct-horse-Battery-9"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


def make_user(username: str, practice: Practice, role: str, **extra):
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, first_name=username.title(), **extra
    )
    Membership.objects.create(practice=practice, user=user, role=role)
    return user


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


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


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


def post_row(client, case, kind, data, row=None):
    """Posts a row form with the case's current version, as the browser would."""
    case.refresh_from_db()
    url = f"/cases/{case.pk}/{kind}/{row.pk}/" if row else f"/cases/{case.pk}/{kind}/new/"
    return client.post(url, {**data, "expected_version": case.version})


def set_metastasis_status(client, case, status, **extra):
    """Posts the metastasis status with the case's current version, as the browser would."""
    case.refresh_from_db()
    return client.post(
        f"/cases/{case.pk}/metastasis-status/",
        {"metastasis_status": status, "expected_version": case.version, **extra},
    )
