"""One display name and one time format (issue 14): "Dr. Alice Adler" and the local time, the
same on the note page, the print view, the PDF (which adds the UTC offset), the Markdown, the
checklist cards and the account pages. The title is set by the user ("My account") or by a
practice admin (the account form).

- alice: physician in practice A, "Dr. Alice Adler" once her title is set
- adam: practice admin of practice A
- bob: physician in practice B only
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.template import Context, Template
from django.utils import formats, timezone, translation
from django.utils.dateparse import parse_datetime

from checklist.models import (
    AccountProfile,
    BoardNoteVersion,
    Category,
    ChecklistItem,
    Membership,
    display_name,
)
from checklist.services import account_set_title
from tests.factories import PASSWORD, create_note, make_signable

User = get_user_model()


def local(moment, offset: bool = False) -> str:
    """The expected text, computed here: local time, the language's short format."""
    if isinstance(moment, str):
        moment = parse_datetime(moment)
    moment = timezone.localtime(moment)
    text = formats.date_format(moment, "SHORT_DATETIME_FORMAT")
    if offset:
        hours = int(moment.utcoffset().total_seconds() // 3600)
        text += f" (UTC+{hours:02d}:00)"
    return text


WINTER = datetime(2026, 1, 15, 14, 1, 47, tzinfo=UTC)  # Berlin: UTC+01:00
SUMMER = datetime(2026, 7, 15, 14, 1, 47, tzinfo=UTC)  # Berlin: UTC+02:00


def test_the_display_name_is_title_first_and_last_name(db):
    user = User.objects.create_user("dana", first_name="Dana", last_name="Demo")
    assert display_name(user) == "Dana Demo"
    account_set_title(user=user, title=" Dr. ")
    assert display_name(User.objects.get(pk=user.pk)) == "Dr. Dana Demo"
    assert AccountProfile.objects.get(user=user).title == "Dr."


def test_a_user_without_a_name_is_named_by_the_user_name_alone(db):
    user = User.objects.create_user("demo.physician")
    account_set_title(user=user, title="Dr.")
    assert display_name(User.objects.get(pk=user.pk)) == "demo.physician"
    assert display_name(None) == ""


def test_an_empty_title_never_creates_a_profile(db):
    user = User.objects.create_user("erin", first_name="Erin")
    account_set_title(user=user, title="")
    assert not AccountProfile.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("moment", "language", "plain", "with_offset"),
    [
        (WINTER, "en", "2026-01-15 15:01", "2026-01-15 15:01 (UTC+01:00)"),
        (WINTER, "de", "15.01.2026 15:01", "15.01.2026 15:01 (UTC+01:00)"),
        (SUMMER, "en", "2026-07-15 16:01", "2026-07-15 16:01 (UTC+02:00)"),
        ("2026-07-15T14:01:47+00:00", "de", "15.07.2026 16:01", "15.07.2026 16:01 (UTC+02:00)"),
    ],
)
def test_times_are_local_in_the_languages_format(settings, moment, language, plain, with_offset):
    from checklist.templatetags.checklist_tags import local_datetime

    settings.TIME_ZONE = "Europe/Berlin"
    with translation.override(language):
        assert local_datetime(moment) == plain
        assert local_datetime(moment, offset=True) == with_offset
        rendered = Template(
            '{% load checklist_tags %}{{ t|local_datetime }}|{{ t|local_datetime:"offset" }}'
        ).render(Context({"t": moment}))
    assert rendered == f"{plain}|{with_offset}"


def test_no_time_is_shown_as_nothing_and_other_text_as_it_is():
    from checklist.templatetags.checklist_tags import local_datetime

    assert local_datetime(None) == "" and local_datetime("") == ""
    assert local_datetime("not a time") == "not a time"


@pytest.fixture
def dr_alice(alice):
    alice.last_name = "Adler"
    alice.save()
    account_set_title(user=alice, title="Dr.")
    return alice


def _pdf_text(pdf: bytes) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return re.sub(r"\s+", " ", done.stdout.decode())


def test_every_rendering_of_a_signed_note_names_the_signer_and_time_alike(
    alice_client, dr_alice, case
):
    make_signable(alice_client, case)
    note = create_note(alice_client, case)
    version = BoardNoteVersion.objects.get(note_id=note)
    alice_client.post(
        f"/notes/{note}/sign/",
        {"revision": version.revision, "case_version": case.version, "password": PASSWORD},
    )
    version.refresh_from_db()
    assert version.state == "signed"
    when = local((version.snapshot or {})["signed_at"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", when)

    page = alice_client.get(f"/notes/{note}/").content.decode()
    assert f"Signed by Dr. Alice Adler, {when}." in page  # the page's own line
    printed = alice_client.get(f"/notes/{note}/v1/print/").content.decode()
    markdown = alice_client.get(f"/notes/{note}/v1/text/").content.decode()
    pdf = _pdf_text(alice_client.get(f"/notes/{note}/v1/pdf/").content)
    offset = local((version.snapshot or {})["signed_at"], offset=True)
    assert offset.startswith(when + " (UTC+0")
    for name, text in [("page", page), ("print", printed), ("markdown", markdown)]:
        assert "Dr. Alice Adler" in text and when in text, name
        assert not re.search(r"\d{2}:\d{2}:\d{2}\+00:00", text), name
        assert not re.search(r"(?i)signed by:? alice\b", text), name
    assert "Dr. Alice Adler" in pdf and offset in pdf
    assert "+00:00" not in pdf.replace(offset, "")


def test_the_checklist_card_says_who_set_it_by_display_name(alice_client, dr_alice, case):
    category = Category.objects.filter(practice=case.practice, active=True).order_by("position")[0]
    alice_client.post(f"/cases/{case.pk}/checklist/{category.pk}/", {"status": "raise", "note": ""})
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    set_at = local(ChecklistItem.objects.get(category=category).set_at)
    assert f"set by Dr. Alice Adler, {set_at}" in html


def test_a_user_sets_their_own_title_on_my_account(alice_client, alice):
    page = alice_client.get("/account/").content.decode()
    assert 'name="title"' in page and 'href="/account/"' in page  # the menu links here
    response = alice_client.post("/account/", {"title": "Dr. med."})
    assert response.status_code == 302
    shown = alice_client.get("/account/").content.decode()
    assert re.search(r'data-testid="shown-as">Dr\. med\. Alice<', shown)
    assert AccountProfile.objects.get(user=alice).title == "Dr. med."


def test_a_title_with_a_control_character_is_refused(alice_client, alice):
    response = alice_client.post("/account/", {"title": "Dr.\u202e"})
    assert response.status_code == 200 and "direction override" in response.content.decode()
    assert not AccountProfile.objects.filter(user=alice).exists()


def test_an_admin_edits_the_title_on_the_account_form(adam_client, alice):
    membership = Membership.objects.get(user=alice)
    form = adam_client.get(f"/accounts/{membership.pk}/").content.decode()
    assert 'name="title"' in form
    adam_client.post(
        f"/accounts/{membership.pk}/", {"title": "Prof.", "role": "physician", "active": "on"}
    )
    assert AccountProfile.objects.get(user=alice).title == "Prof."
    listing = adam_client.get("/accounts/").content.decode()
    assert "Prof. Alice" in listing


def test_an_admin_sets_the_title_of_a_new_account(adam_client, practice_a):
    adam_client.post(
        "/accounts/new/",
        {
            "username": "dana",
            "title": "Dr.",
            "first_name": "Dana",
            "last_name": "Demo",
            "role": "physician",
        },
    )
    assert display_name(User.objects.get(username="dana")) == "Dr. Dana Demo"


def test_an_admin_of_another_practice_cannot_edit_the_title(alice, bob):
    from tests.factories import logged_in

    Membership.objects.filter(user=bob).update(role=Membership.PRACTICE_ADMIN)
    membership = Membership.objects.get(user=alice)
    response = logged_in(bob).post(
        f"/accounts/{membership.pk}/", {"title": "X", "role": "physician", "active": "on"}
    )
    assert response.status_code == 404
    assert not AccountProfile.objects.filter(user=alice).exists()


def test_the_trails_user_filter_names_people(adam_client, dr_alice):
    html = adam_client.get("/audit/").content.decode()
    assert f'<option value="{dr_alice.pk}">Dr. Alice Adler (alice)</option>' in html
