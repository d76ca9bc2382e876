"""The case page's body kept per process (checklist/fragments.py): keyed by the rows as read, so
a change shows at once; rendered from what the view hands in only; each session its own CSRF
token."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.utils import timezone, translation

from checklist import fragments
from checklist.models import Case, ChecklistItem, StagingRecord
from tests.factories import STAGING, logged_in, post_row
from tests.test_note_renderings import _fully_recorded_note

pytestmark = pytest.mark.django_db

BODY = "checklist/_case_record.html"
HEADER = "checklist/_case_header.html"
CHECKLIST = "checklist/_checklist_body.html"
PAGES = {BODY: "/cases/{}/", CHECKLIST: "/cases/{}/checklist/"}
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def renders(monkeypatch):
    """The bodies rendered (not served from the cache), by template; `renders.contexts` what
    the view handed in."""
    rendered = Rendered()
    rendered.contexts = []
    original = fragments._render

    def counted(template_name, make_context):
        rendered.append(template_name)

        def recorded():
            context = make_context()
            rendered.contexts.append(context)
            return context

        return original(template_name, recorded)

    monkeypatch.setattr(fragments, "_render", counted)
    return rendered


class Rendered(list):
    contexts: list


def _page(client, case, **headers):
    response = client.get(f"/cases/{case.pk}/", **headers)
    assert response.status_code == 200
    return response


@pytest.mark.parametrize("body", [BODY, CHECKLIST])
@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("who", ["alice", "adam"])
def test_the_body_is_what_the_full_request_context_renders(
    alice, adam, practice_a, codelists, language, who, renders, body
):
    """Rendered with a plain context, the body equals the one rendered with the request and
    every context processor: it reads nothing of the request, the user or the membership
    that its key does not hold."""
    _version, rows = _fully_recorded_note(alice, practice_a)
    case = rows["case"]
    client = logged_in({"alice": alice, "adam": adam}[who])
    response = client.get(PAGES[body].format(case.pk), HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    assert renders == [body]
    handed = renders.contexts[0]
    assert handed["physician"] is (who == "alice")

    with translation.override(language):
        kept, queries = fragments._render(body, lambda: handed)
        full = render_to_string(body, handed, request=response.wsgi_request)
    assert queries == 0
    assert len(TOKEN.findall(full)) == kept.count(fragments.CSRF_PLACEHOLDER)
    assert TOKEN.sub("", kept) == TOKEN.sub("", full)
    # The page served holds that body, with the request's own token.
    page = response.content.decode()
    assert TOKEN.sub("", kept) in TOKEN.sub("", page)
    assert fragments.CSRF_PLACEHOLDER not in page
    assert "FULL-1" in page


def test_a_second_view_is_served_from_the_cache_and_a_change_shows_at_once(
    alice_client, case, renders
):
    post_row(alice_client, case, "staging", STAGING)
    _page(alice_client, case)
    _page(alice_client, case)
    assert renders == [BODY]  # the second view: the kept body

    staging = StagingRecord.objects.get(case=case)
    post_row(alice_client, case, "staging", {**STAGING, "t_category": "3"}, row=staging)
    page = _page(alice_client, case).content.decode()
    assert renders == [BODY, BODY]
    assert "T3" in page

    # A change the case's own row does not show: the name of who changed the case last.
    case.refresh_from_db()
    user = case.updated_by
    user.username = "alice.renamed"
    user.save()
    assert "alice.renamed" in _page(alice_client, case).content.decode()
    assert len(renders) == 3


def test_the_checklist_body_is_kept_and_a_change_shows_at_once(
    alice_client, adam_client, case, renders
):
    from checklist.models import CatalogueVersion, Category

    url = f"/cases/{case.pk}/checklist/"
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy")
    item_url = f"/cases/{case.pk}/checklist/{chemo.pk}/"
    alice_client.post(item_url, {"status": "raise", "note": "first note"})
    alice_client.get(url)
    html = alice_client.get(url).content.decode()
    assert renders == [CHECKLIST]
    assert "first note" in html

    revision = ChecklistItem.objects.get(category=chemo).revision
    alice_client.post(item_url, {"status": "discussed", "note": "second", "revision": revision})
    html = alice_client.get(url).content.decode()
    assert "second" in html and "first note" not in html
    assert len(renders) == 2

    post_row(alice_client, case, "staging", STAGING)  # the record's summary changes
    html = alice_client.get(url).content.decode()
    assert "T2" in html
    assert len(renders) == 3

    adam_client.post("/catalogue/draft/")
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    adam_client.post(f"/catalogue/{draft.number}/publish/", {"change_note": "Unchanged."})
    html = alice_client.get(url).content.decode()
    assert 'data-testid="newer-version"' in html
    assert len(renders) == 4


def test_the_body_is_kept_per_role_and_language(alice_client, adam_client, case, renders):
    _page(alice_client, case)
    _page(adam_client, case)  # an admin: no edit actions
    _page(alice_client, case, HTTP_ACCEPT_LANGUAGE="de")
    _page(alice_client, case)
    _page(adam_client, case)
    assert len(renders) == 3
    assert "Add primary tumour" in _page(alice_client, case).content.decode()
    assert "Add primary tumour" not in _page(adam_client, case).content.decode()


def test_the_body_is_rendered_again_on_the_next_day(case, rf, renders):
    """The timeline ends today: tomorrow's body is another one."""
    request = rf.get("/")
    case = Case.objects.select_related("updated_by").get(pk=case.pk)

    def body():
        return fragments.body(request, HEADER, (case.pk,), lambda: {"case": case})

    body()
    body()
    with time_machine.travel(timezone.now() + timedelta(days=1), tick=True):
        body()
    assert renders == [HEADER, HEADER]


def test_each_session_gets_its_own_csrf_token_in_a_kept_body(alice, practice_a, codelists, case):
    """The immune section's form is in the body; a second physician's page, served from the
    cache, carries their own token, and their post with it is taken."""
    from checklist.models import Membership

    bea = get_user_model().objects.create_user("bea", password="x")
    Membership.objects.create(practice=practice_a, user=bea, role=Membership.PHYSICIAN)
    first = logged_in(alice)
    second = logged_in(bea)
    second.handler.enforce_csrf_checks = True
    tokens = [TOKEN.findall(_page(c, case).content.decode()) for c in (first, second)]
    assert tokens[0] and tokens[1]
    assert set(tokens[0]).isdisjoint(tokens[1])
    case.refresh_from_db()
    response = second.post(
        f"/cases/{case.pk}/immune-not-assessed/",
        {"value": "on", "expected_version": case.version, "csrfmiddlewaretoken": tokens[1][0]},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.immune_not_assessed


def test_a_body_whose_rendering_queries_is_not_kept(case, alice, monkeypatch, rf, caplog, renders):
    """Here the case is read without the user who changed it last, so the header's name
    costs a query: the body cannot be keyed by what it read. The tests raise; production
    serves it, keeps nothing and logs the template (never data)."""
    Case.objects.filter(pk=case.pk).update(updated_by=alice)
    request = rf.get("/")
    request.session = {}

    def context():
        return {"case": Case.objects.get(pk=case.pk), "physician": True}

    with pytest.raises(fragments.ReadTheDatabase):
        fragments.body(request, HEADER, ("q", case.pk), context)
    # A query while making the context is counted too: what it read is not in the key.
    with pytest.raises(fragments.ReadTheDatabase):
        fragments.body(
            request,
            HEADER,
            ("q2", case.pk),
            lambda: {"case": Case.objects.select_related("updated_by").get(pk=case.pk)},
        )

    monkeypatch.setattr(fragments, "STRICT", False)
    for _ in range(2):
        html = fragments.body(request, HEADER, ("q", case.pk), context)
        assert "alice" in html
    assert renders == [HEADER] * 4  # the two strict ones, then both times: never kept
    assert "_case_header.html: its rendering queried the database" in caplog.text
    assert case.label not in caplog.text


def test_the_name_of_who_set_an_item_is_in_the_key_and_a_title_change_shows(
    alice_client, alice, case, renders
):
    """The items are read with who set them and that user's profile, which points back to
    the user: the key follows both once, and a changed title shows at once."""
    from checklist.models import Category
    from checklist.services import account_set_title

    url = f"/cases/{case.pk}/checklist/"
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy")
    account_set_title(user=alice, title="Dr.")
    alice_client.post(f"/cases/{case.pk}/checklist/{chemo.pk}/", {"status": "raise", "note": ""})
    first = alice_client.get(url).content.decode()
    assert "Dr." in first and "Prof." not in first
    account_set_title(user=alice, title="Prof.")
    assert "Prof." in alice_client.get(url).content.decode()
    assert renders == [CHECKLIST, CHECKLIST]
