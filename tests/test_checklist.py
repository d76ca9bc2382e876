"""The per-case checklist: every category in catalogue order, statuses and notes, linked lines,
moving a case to a newer catalogue version."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checklist.models import (
    Case,
    CatalogueVersion,
    Category,
    Checklist,
    ChecklistItem,
    TherapyLine,
)
from checklist.wording import recommending_words
from tests.factories import post_row, seed_rows, set_metastasis_status

CODES = [
    "chemotherapy",
    "hormone_therapy",
    "radiotherapy",
    "dendritic_cell_therapy",
    "immune_supportive",
    "metabolic_cell_biological",
]


def _codes(html: str) -> list[str]:
    return re.findall(r'data-testid="category" data-code="([a-z0-9_]+)"', html)


def _category_markup(html: str) -> str:
    """The category cards without the parts that may differ by case: linked lines and ids."""
    cards = html[html.index('<div class="checklist-items">') : html.index("</main>")]
    cards = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", cards)
    cards = re.sub(
        r'<div class="small mb-1" data-testid="linked-lines">.*?</div>', "", cards, flags=re.S
    )
    return re.sub(r"/cases/\d+/", "/cases/N/", cards)


def test_it_shows_every_category_in_catalogue_order_with_the_disclaimer(alice_client, case):
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    assert _codes(html) == CODES
    assert "do not constitute a promise of cure" in html
    assert "makes no automated recommendation" in html
    assert "states no priority" in html


def test_two_very_different_cases_render_the_same_categories_and_markup(
    alice_client, alice, case, practice_a
):
    other = Case.objects.create(
        practice=practice_a,
        label="CLL-3",
        year_of_birth=1940,
        sex="male",
        situation="under_therapy",
    )
    post_row(alice_client, other, "tumour", {"oncotree": "CLLSLL", "laterality": "not_applicable"})
    post_row(
        alice_client,
        other,
        "staging",
        {"staged_on": "2020-01-01", "kind": "clinical", "system": "binet", "stage_text": "B"},
    )
    set_metastasis_status(alice_client, other, "not_applicable")
    post_row(
        alice_client,
        other,
        "immune",
        {"assessed_on": "2024-01-01", "igg": "3.1", "infections_12m": "3"},
    )
    first = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    second = alice_client.get(f"/cases/{other.pk}/checklist/").content.decode()
    assert _codes(first) == _codes(second) == CODES
    assert _category_markup(first) == _category_markup(second)
    assert first != second  # only the case summary differs


def test_a_linked_line_shows_under_its_category_with_tolerability(alice_client, case):
    dc = Category.objects.get(practice=case.practice, code="dendritic_cell_therapy")
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["IM"],
            "regimen": "DC vaccine",
            "position": "first_advanced",
            "started_on": "2022-01-01",
            "ended_on": "2022-06-01",
            "end_reason": "A",
            "category": dc.pk,
        },
    )
    line = TherapyLine.objects.get()
    post_row(
        alice_client,
        case,
        "event",
        {"line": line.pk, "term": "fever", "ctcae_version": "5.0", "grade": 3, "led_to_stop": "on"},
    )
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    card = html[html.index('data-code="dendritic_cell_therapy"') :]
    card = card[: card.index("</article>")]
    assert "Line 1 · first line for advanced disease" in card
    assert "Stopped for side effects" in card and "worst grade G3" in card
    others = html.replace(card, "")
    assert "DC vaccine" not in others


def test_a_line_is_never_linked_automatically(alice_client, case):
    post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["IM"],
            "regimen": "Pembrolizumab",
            "position": "first_advanced",
            "started_on": "2022-01-01",
            "ongoing": "on",
        },
    )
    assert TherapyLine.objects.get().category is None
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    assert "Pembrolizumab" not in html


def test_status_and_note_are_saved_with_who_and_when(alice_client, case):
    category = Category.objects.get(practice=case.practice, code="radiotherapy")
    response = alice_client.post(
        f"/cases/{case.pk}/checklist/{category.pk}/",
        {"status": "raise", "note": "Bone pain: ask radiotherapy."},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    html = response.content.decode()
    # only the card's status line and revision: the inputs stay as the physician left them
    assert html.strip().startswith('<strong class="text-success" data-saved>Saved at ')
    assert "set by Alice" in html and "<textarea" not in html
    item = ChecklistItem.objects.get()
    assert item.set_by is not None
    assert (item.status, item.note, item.set_by.username) == (
        "raise",
        "Bone pain: ask radiotherapy.",
        "alice",
    )


def test_it_works_without_javascript(alice_client, case):
    category = Category.objects.get(practice=case.practice, code="chemotherapy")
    response = alice_client.post(
        f"/cases/{case.pk}/checklist/{category.pk}/", {"status": "not_raised", "note": ""}
    )
    assert response.status_code == 302
    assert response["Location"].endswith("#category-chemotherapy")


def test_a_stale_item_is_refused_with_who_changed_it(alice_client, case):
    category = Category.objects.get(practice=case.practice, code="chemotherapy")
    url = f"/cases/{case.pk}/checklist/{category.pk}/"
    alice_client.post(url, {"status": "raise", "note": "first"})
    alice_client.post(url, {"status": "discussed", "note": "second", "revision": 1})
    response = alice_client.post(
        url, {"status": "not_raised", "note": "stale", "revision": 1}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200  # htmx swaps the refusal into the status line
    assert b"changed this item in the meantime" in response.content
    assert b"<textarea" not in response.content  # the input is kept in the browser
    assert ChecklistItem.objects.get().note == "second"


def test_an_admin_cannot_set_statuses(adam_client, case):
    category = Category.objects.get(practice=case.practice, code="chemotherapy")
    response = adam_client.post(f"/cases/{case.pk}/checklist/{category.pk}/", {"status": "raise"})
    assert response.status_code == 403
    assert not ChecklistItem.objects.exists()


def test_another_practices_category_is_404(alice_client, case, practice_b):
    foreign = Category.objects.filter(practice=practice_b).first()
    assert foreign is not None
    response = alice_client.post(f"/cases/{case.pk}/checklist/{foreign.pk}/", {"status": "raise"})
    assert response.status_code == 404


def test_publishing_v2_does_not_change_a_case_worked_under_v1(alice_client, adam_client, case):
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy")
    radio = Category.objects.get(practice=case.practice, code="radiotherapy")
    alice_client.post(f"/cases/{case.pk}/checklist/{chemo.pk}/", {"status": "raise", "note": "c"})
    alice_client.post(
        f"/cases/{case.pk}/checklist/{radio.pk}/", {"status": "discussed", "note": "r"}
    )
    # The admin rewords radiotherapy and adds a category in v2.
    adam_client.post("/catalogue/draft/")
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    radio2 = draft.categories.get(code="radiotherapy")
    adam_client.post(
        f"/catalogue/2/categories/{radio2.pk}/",
        {
            "code": "radiotherapy",
            "name_en": "Radiotherapy (radiation)",
            "name_de": "Strahlentherapie",
            "group_en": radio2.group_en,
            "group_de": radio2.group_de,
            "description_en": radio2.description_en,
            "description_de": radio2.description_de,
            "source_section": radio2.source_section,
            "source_quote": radio2.source_quote,
        },
    )
    adam_client.post("/catalogue/2/publish/", {"change_note": "Radiotherapy reworded."})
    assert CatalogueVersion.objects.get(pk=draft.pk).published_at is not None

    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    assert "Categories of catalogue version 1" in html
    assert 'data-testid="newer-version"' in html and "text changed" in html
    assert Checklist.objects.get(case=case).version.number == 1

    alice_client.post(f"/cases/{case.pk}/checklist/move/", {"version": draft.pk})
    items = {
        i.category.code: i
        for i in ChecklistItem.objects.filter(checklist__case=case).select_related("category")
    }
    assert items["chemotherapy"].status == "raise" and items["chemotherapy"].note == "c"
    assert items["radiotherapy"].status == "not_yet_reviewed"
    assert items["radiotherapy"].previous_status == "discussed"
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    assert "Categories of catalogue version 2" in html and "Radiotherapy (radiation)" in html
    assert "the status was “discussed”" in html


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.sampled_from(["present", "none_known", "not_assessed", "not_applicable", ""]),
    regimen=st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=20),
    language=st.sampled_from(["en", "de"]),
)
def test_rendered_checklists_contain_no_recommending_word(
    alice_client, case, status, regimen, language
):
    case = Case.objects.get(pk=case.pk)
    case.metastasis_status = status
    case.save()
    TherapyLine.objects.filter(case=case).delete()
    TherapyLine.objects.create(
        case=case,
        practice_id=case.practice_id,
        number=1,
        types=["CH"],
        regimen=regimen,
        position="A",
        started_on="2020-01-01",
        category=Category.objects.filter(practice=case.practice).first(),
    )
    alice_client.cookies["django_language"] = language
    html = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    assert not recommending_words(html, html=True)


@pytest.mark.parametrize(("categories", "lines"), [(6, 1), (60, 50)])
def test_the_checklist_page_queries_are_constant(
    alice_client, case, django_assert_num_queries, categories, lines
):
    version = CatalogueVersion.objects.get(practice=case.practice, number=1)
    template = version.categories.first()
    assert template is not None
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
    TherapyLine.objects.filter(case=case).update(category=template)
    alice_client.get(f"/cases/{case.pk}/checklist/")
    # 1 session, 2 user, 2a the user's second-factor device (OTP middleware), 3 memberships,
    # 4 the case (access helper), 5 its record in one round trip as on the case page (one
    # SELECT per kind of row and the code lists for the labels: record.fetch_rows),
    # 6 the checklist, 7 the newest published version (for the notice), 8 the categories,
    # 9 the access event.
    with django_assert_num_queries(10):
        response = alice_client.get(f"/cases/{case.pk}/checklist/")
    assert len(_codes(response.content.decode())) == categories


def test_only_active_categories_of_the_checklists_version_can_be_set(
    alice_client, adam_client, case
):
    adam_client.post("/catalogue/draft/")
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    drafted = draft.categories.get(code="chemotherapy")
    response = alice_client.post(f"/cases/{case.pk}/checklist/{drafted.pk}/", {"status": "raise"})
    assert response.status_code == 404
    assert not Checklist.objects.exists()


def test_an_item_of_a_moved_checklist_asks_the_page_to_reload(alice_client, adam_client, case):
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy", version__number=1)
    alice_client.post(f"/cases/{case.pk}/checklist/{chemo.pk}/", {"status": "raise"})
    adam_client.post("/catalogue/draft/")
    adam_client.post("/catalogue/2/publish/", {"change_note": "v2"})
    v2 = CatalogueVersion.objects.get(practice=case.practice, number=2)
    alice_client.post(f"/cases/{case.pk}/checklist/move/", {"version": v2.pk})
    # A page still showing v1 posts for the v1 category: not found now, never a server error.
    response = alice_client.post(
        f"/cases/{case.pk}/checklist/{chemo.pk}/",
        {"status": "discussed", "revision": 1},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 404


def test_a_first_save_by_someone_else_makes_a_first_save_stale(alice_client, case):
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy")
    url = f"/cases/{case.pk}/checklist/{chemo.pk}/"
    alice_client.post(url, {"status": "raise", "note": "first", "revision": 0})
    response = alice_client.post(
        url, {"status": "not_raised", "note": "second", "revision": 0}, HTTP_HX_REQUEST="true"
    )
    assert b"changed this item in the meantime" in response.content
    assert ChecklistItem.objects.get().note == "first"
