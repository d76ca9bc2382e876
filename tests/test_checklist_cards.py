"""Saving a checklist card: htmx gets only the card's status line and, out of band, the item's
revision (never the card, so typed text is never replaced and a queued save still finds its
form); refusals answer 200 with the message there; without JavaScript a refusal renders the page
with the typed entry kept. Also the htmx setup in base.html (no `style` settling, htmx 2)."""

from __future__ import annotations

import json
import re

import pytest

from checklist.models import CatalogueVersion, Category, ChecklistItem, Membership, TherapyLine
from tests.factories import logged_in, make_user, seed_rows

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def chemo(case):
    return Category.objects.get(practice=case.practice, code="chemotherapy")


@pytest.fixture
def url(case, chemo):
    return f"/cases/{case.pk}/checklist/{chemo.pk}/"


def test_it_answers_htmx_with_the_status_line_and_the_revision_only(alice_client, chemo, url):
    response = alice_client.post(url, {"status": "raise", "note": "Ask.", "revision": 0}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Saved at" in html and "set by" in html
    assert (
        f'<input type="hidden" name="revision" id="item-revision-{chemo.pk}" value="1"'
        ' data-hx-swap-oob="true">' in html
    )
    # Neither the card nor its inputs: what the physician typed meanwhile stays.
    assert "<article" not in html and "<textarea" not in html and 'name="status"' not in html
    item = ChecklistItem.objects.get()
    assert (item.status, item.note, item.revision) == ("raise", "Ask.", 1)


def test_a_stale_htmx_save_is_refused_in_the_status_line(alice_client, case, chemo, url):
    colleague = make_user("anna", case.practice, Membership.PHYSICIAN)
    logged_in(colleague).post(url, {"status": "discussed", "note": "Anna's", "revision": 0})
    response = alice_client.post(url, {"status": "raise", "note": "Mine", "revision": 0}, **HTMX)
    # 200: htmx swaps only 2xx answers, and the browser logs no failed request.
    assert response.status_code == 200
    html = response.content.decode()
    assert "changed this item in the meantime" in html and "data-stale" in html
    assert "Saved at" not in html
    # The note the colleague saved is shown; the typed one is left alone in the browser.
    assert "Anna&#x27;s" in html and "Mine" not in html and "<textarea" not in html
    # The current revision goes back, so saving again on purpose is taken.
    assert f'id="item-revision-{chemo.pk}" value="1" data-hx-swap-oob="true"' in html
    assert ChecklistItem.objects.get().note == "Anna's"
    again = alice_client.post(url, {"status": "raise", "note": "Mine", "revision": 1}, **HTMX)
    assert "Saved at" in again.content.decode()
    assert ChecklistItem.objects.get().note == "Mine"


def test_an_invalid_htmx_save_shows_why_and_changes_no_revision(alice_client, url):
    response = alice_client.post(url, {"note": "No status", "revision": 0}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose one of the statuses." in html and 'role="alert"' in html
    assert "hx-swap-oob" not in html and "Saved at" not in html
    assert not ChecklistItem.objects.exists()


def test_a_stale_save_without_javascript_keeps_the_typed_entry(alice_client, case, chemo, url):
    colleague = make_user("anna", case.practice, Membership.PHYSICIAN)
    logged_in(colleague).post(url, {"status": "discussed", "note": "Anna's", "revision": 0})
    response = alice_client.post(url, {"status": "raise", "note": "Mine, typed", "revision": 0})
    assert response.status_code == 200
    html = response.content.decode()
    card = html[html.index('id="category-chemotherapy"') : html.index('id="category-hormone')]
    assert ">Mine, typed</textarea>" in card
    assert f'value="raise" id="s-{chemo.pk}-raise" checked' in card
    assert "changed this item in the meantime" in card
    # with the colleague's revision: saving again after checking is taken
    assert f'id="item-revision-{chemo.pk}" value="1">' in card
    assert ChecklistItem.objects.get().note == "Anna's"


def test_the_card_form_queues_its_saves_and_swaps_only_its_status_line(alice_client, case, chemo):
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    form = re.search(rf'<form[^>]*action="/cases/{case.pk}/checklist/{chemo.pk}/"[^>]*>', html)
    assert form is not None
    tag = form.group(0)
    assert 'data-hx-sync="this:queue last"' in tag
    assert f'data-hx-target="#item-status-{chemo.pk}" data-hx-swap="innerHTML"' in tag
    assert "outerHTML" not in tag
    # status at once, the note after a pause in typing, or the Save button; no eval filters
    assert (
        'data-hx-trigger="submit, change target:input[type=radio], input delay:1s target:textarea"'
        in tag
    )
    assert f'id="item-status-{chemo.pk}" data-testid="set-by"' in html


def test_htmx_settles_no_style_attribute_and_is_pinned_to_version_2(alice_client, case):
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html)
    assert meta is not None
    config = json.loads(meta.group(1))
    # The CSP allows no inline style: settling must not copy a style attribute.
    assert "style" not in config["attributesToSettle"]
    assert config["allowEval"] is False and config["includeIndicatorStyles"] is False
    assert re.search(r'<script src="/static/django_htmx/htmx-2\.min\.js" defer>', html)


@pytest.mark.parametrize(("categories", "lines"), [(6, 1), (60, 50)])
def test_the_item_post_queries_are_constant(
    alice_client, case, chemo, url, django_assert_num_queries, categories, lines
):
    version = CatalogueVersion.objects.get(practice=case.practice, number=1)
    for i in range(categories - version.categories.count()):
        Category.objects.create(
            practice=case.practice,
            version=version,
            code=f"extra_{i}",
            position=1000 + i,
            group_en="g",
            group_de="g",
            name_en=f"Extra {i}",
            name_de=f"Extra {i}",
            description_en="d",
            description_de="d",
            source_section="s",
            source_quote="q",
        )
    seed_rows(case, lines)
    TherapyLine.objects.filter(case=case).update(category=chemo)
    alice_client.post(url, {"status": "raise", "note": "first", "revision": 0}, **HTMX)
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
    # 4 the case (access helper), 5 the checklist (the
    # version it is worked under), 6 the category, 7 SAVEPOINT, 8 the audit context, 9 the
    # checklist locked, 10 the item locked, 11 the item saved, 12 RELEASE SAVEPOINT, 13 the
    # acting user's profile (their name on the status line).
    with django_assert_num_queries(14):
        response = alice_client.post(
            url, {"status": "discussed", "note": "second", "revision": 1}, **HTMX
        )
    assert "Saved at" in response.content.decode()
