"""The practice's catalogue of therapy categories: versions, drafts, editing, publishing, the
diff between versions, and who may do what."""

import re

import pytest
from django.core.exceptions import ValidationError

from checklist import services
from checklist.models import CatalogueVersion, Category, TherapyLine
from tests.factories import create_note, post_row


def test_old_versions_stay_readable_and_published_ones_never_change(adam_client, case):
    adam_client.post("/catalogue/draft/")
    v1 = CatalogueVersion.objects.get(practice=case.practice, number=1)
    chemo = v1.categories.get(code="chemotherapy")
    response = adam_client.post(
        f"/catalogue/1/categories/{chemo.pk}/",
        {
            "code": "chemotherapy",
            "name_en": "X",
            "name_de": "X",
            "group_en": "g",
            "group_de": "g",
            "description_en": "d",
            "description_de": "d",
            "source_section": "s",
            "source_quote": "q",
        },
    )
    assert response.status_code == 302
    assert Category.objects.get(pk=chemo.pk).name_en == "Chemotherapy"
    assert adam_client.get("/catalogue/1/").status_code == 200
    with pytest.raises(ValidationError):
        services.category_save(category=chemo)


def test_the_admin_adds_retires_reorders_with_a_citation(adam_client, case):
    adam_client.post("/catalogue/draft/")
    response = adam_client.post(
        "/catalogue/2/categories/new/",
        {
            "code": "new_one",
            "name_en": "New",
            "name_de": "Neu",
            "group_en": "g",
            "group_de": "g",
            "description_en": "d",
            "description_de": "d",
            "source_section": "",
            "source_quote": "",
        },
    )
    assert response.status_code == 200 and b"This field is required" in response.content
    adam_client.post(
        "/catalogue/2/categories/new/",
        {
            "code": "new_one",
            "name_en": "New",
            "name_de": "Neu",
            "group_en": "g",
            "group_de": "g",
            "description_en": "d",
            "description_de": "d",
            "source_section": "combination_therapies",
            "source_quote": "Possible combinable therapeutic approaches include:",
        },
    )
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    chemo = draft.categories.get(code="chemotherapy")
    adam_client.post(f"/catalogue/2/categories/{chemo.pk}/down/")
    adam_client.post(f"/catalogue/2/categories/{chemo.pk}/retire/")
    order = list(draft.categories.order_by("position").values_list("code", "active"))
    assert order[:2] == [("hormone_therapy", True), ("chemotherapy", False)]
    assert order[-1] == ("new_one", True)
    diff = adam_client.get("/catalogue/diff/?a=1&b=2").content.decode()
    assert "new_one" in diff and "retired" in diff and "moved in the order" in diff
    assert adam_client.post("/catalogue/2/publish/", {"change_note": ""}).status_code == 302
    assert CatalogueVersion.objects.get(pk=draft.pk).published_at is None


def test_the_shipped_catalogue_imports_as_a_draft(adam_client, case):
    adam_client.post("/catalogue/draft/", {"source": "shipped"})
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    assert draft.is_draft and draft.categories.count() == 6
    page = adam_client.get("/catalogue/2/").content.decode()
    assert "No differences in the categories." in page


def test_a_physician_reads_but_does_not_edit_the_catalogue(alice_client, case):
    assert alice_client.get("/catalogue/").status_code == 200
    assert alice_client.post("/catalogue/draft/").status_code == 403


# --- the optional MII therapy-type template -----------------------------------------------

MII_ORDER = ["OP", "ST", "CH", "HO", "IM", "ZS", "SZ", "AS", "WS", "WW", "SO"]
MII_URL = "https://www.medizininformatik-initiative.de/fhir/ext/modul-onko/CodeSystem/mii-cs-onko-therapie-typ"


def _codes(version: CatalogueVersion) -> list[str]:
    return list(version.categories.order_by("position").values_list("code", flat=True))


def test_the_admin_imports_the_mii_template_as_a_draft_and_publishes_it(adam_client, case):
    response = adam_client.post("/catalogue/draft/", {"source": "mii_therapy_types"})
    assert response.status_code == 302 and response["Location"] == "/catalogue/2/"
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    assert draft.is_draft and _codes(draft) == MII_ORDER
    chemo = draft.categories.get(code="CH")
    assert (chemo.name_en, chemo.name_de) == ("Chemotherapy", "Chemotherapie")
    assert chemo.description_en == chemo.description_de == ""  # labels only
    assert chemo.source_section == f"{MII_URL}|2025.0.0" and chemo.source_quote == "Chemotherapie"
    # The practice's source keeps saying what it says (the code system has no disclaimer).
    v1 = CatalogueVersion.objects.get(practice=case.practice, number=1)
    assert draft.disclaimer_en == v1.disclaimer_en and draft.orientation == v1.orientation
    page = adam_client.get("/catalogue/2/").content.decode()
    assert "MII onko 2025.0.0" in page and f"{MII_URL}|2025.0.0" in page
    assert "removed" in page and "added" in page  # the diff against version 1
    adam_client.post("/catalogue/2/publish/", {"change_note": "MII therapy types"})
    draft.refresh_from_db()
    assert not draft.is_draft
    assert CatalogueVersion.objects.for_practice(case.practice).newest_published() == draft
    # A second import while a draft is open is refused, as for the shipped catalogue.
    adam_client.post("/catalogue/draft/")
    response = adam_client.post("/catalogue/draft/", {"source": "mii_therapy_types"}, follow=True)
    assert "Publish or discard the open draft first." in response.content.decode()
    assert CatalogueVersion.objects.filter(practice=case.practice).count() == 3


def test_the_import_and_the_merge_are_audited(adam_client, case, adam):
    from checklist.models import AuditEvent

    def changed_by_adam(before: int) -> set[str]:
        events = AuditEvent.objects.filter(practice_id=case.practice_id).order_by("seq")[before:]
        return {e.table_name for e in events if e.actor_id == adam.pk and e.kind == "change"}

    before = AuditEvent.objects.filter(practice_id=case.practice_id).count()
    adam_client.post("/catalogue/draft/", {"source": "mii_therapy_types"})
    assert {"checklist_catalogueversion", "checklist_category"} <= changed_by_adam(before)
    adam_client.post("/catalogue/2/discard/")
    adam_client.post("/catalogue/draft/")
    before = AuditEvent.objects.filter(practice_id=case.practice_id).count()
    adam_client.post("/catalogue/2/merge/", {"codes": ["SO"]})
    assert changed_by_adam(before) == {"checklist_category"}


def test_the_admin_merges_chosen_template_categories_into_the_own_draft(adam_client, case):
    adam_client.post("/catalogue/draft/")
    page = adam_client.get("/catalogue/2/merge/").content.decode()
    assert all(f'value="{code}"' in page for code in MII_ORDER) and MII_URL in page
    # Chosen out of order: added at the end, in the template's order.
    response = adam_client.post("/catalogue/2/merge/", {"codes": ["WW", "OP", "CH"]})
    assert response.status_code == 302
    draft = CatalogueVersion.objects.get(practice=case.practice, number=2)
    assert _codes(draft) == [*_codes(CatalogueVersion.objects.get(number=1)), "OP", "CH", "WW"]
    # The merged categories are reordered, reworded and published like any other.
    op = draft.categories.get(code="OP")
    adam_client.post(f"/catalogue/2/categories/{op.pk}/down/")
    assert _codes(draft)[-3:] == ["CH", "OP", "WW"]
    response = adam_client.post(
        f"/catalogue/2/categories/{op.pk}/",
        {
            "code": "OP",
            "name_en": "Surgery",
            "name_de": "Operation",
            "group_en": "g",
            "group_de": "g",
            "description_en": "",
            "description_de": "",
            "source_section": op.source_section,
            "source_quote": op.source_quote,
        },
    )
    assert response.status_code == 302
    assert Category.objects.get(pk=op.pk).group_en == "g"
    # Only what the draft lacks is offered again; a code it holds is refused.
    page = adam_client.get("/catalogue/2/merge/").content.decode()
    assert 'value="OP"' not in page and 'value="ST"' in page
    response = adam_client.post("/catalogue/2/merge/", {"codes": ["OP"]})
    assert response.status_code == 200 and _codes(draft).count("OP") == 1
    with pytest.raises(ValidationError):
        services.catalogue_merge_template(version=draft, codes=["OP"])
    with pytest.raises(ValidationError):
        services.catalogue_merge_template(version=draft, codes=["KW"])
    adam_client.post("/catalogue/2/publish/", {"change_note": "three MII types"})
    assert not CatalogueVersion.objects.get(pk=draft.pk).is_draft
    # A published version takes no more categories.
    adam_client.post("/catalogue/2/merge/", {"codes": ["ST"]})
    assert "ST" not in _codes(draft)


def test_the_merge_page_reads_in_german(adam_client, case):
    adam_client.post("/catalogue/draft/")
    adam_client.cookies["django_language"] = "de"
    page = adam_client.get("/catalogue/2/merge/").content.decode()
    assert "Zielgerichtete Substanzen" in page and "Kategorien aus der MII-Vorlage" in page


def test_a_physician_can_neither_import_nor_merge_the_template(alice_client, adam_client, case):
    assert (
        alice_client.post("/catalogue/draft/", {"source": "mii_therapy_types"}).status_code == 403
    )
    adam_client.post("/catalogue/draft/")
    assert alice_client.get("/catalogue/2/merge/").status_code == 403
    assert alice_client.post("/catalogue/2/merge/", {"codes": ["CH"]}).status_code == 403
    assert not Category.objects.filter(code="CH").exists()


def test_an_outsider_gets_404_for_the_merge_page(adam_client, bob_client, case, practice_b):
    from checklist.models import Membership

    adam_client.post("/catalogue/draft/")  # version 2 exists only in practice A
    Membership.objects.filter(practice=practice_b).update(role=Membership.PRACTICE_ADMIN)
    assert bob_client.get("/catalogue/2/merge/").status_code == 404
    assert bob_client.post("/catalogue/2/merge/", {"codes": ["CH"]}).status_code == 404
    assert not Category.objects.filter(code="CH").exists()


def test_a_chemotherapy_line_is_never_linked_to_the_mii_category_ch(
    adam_client, alice_client, case
):
    """The category's code equals the line's therapy type; the line stays unlinked, and every
    category is shown for the case, unfiltered, in the template's order."""
    adam_client.post("/catalogue/draft/", {"source": "mii_therapy_types"})
    adam_client.post("/catalogue/2/publish/", {"change_note": "MII therapy types"})
    form = alice_client.get(f"/cases/{case.pk}/line/new/").content.decode()
    assert '<option value="" selected>no catalogue category</option>' in form
    response = post_row(
        alice_client,
        case,
        "line",
        {
            "number": 1,
            "types": ["CH"],
            "position": "A",
            "started_on": "2020-01-01",
            "ended_on": "2020-06-01",
            "category": "",
        },
    )
    assert response.status_code == 302
    line = TherapyLine.objects.get(case=case)
    assert line.types == ["CH"] and line.category is None
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "Linked category: no catalogue category" in re.sub(r"\s+", " ", page)
    checklist = alice_client.get(f"/cases/{case.pk}/checklist/").content.decode()
    assert re.findall(r'data-testid="category" data-code="([A-Za-z0-9_]+)"', checklist) == MII_ORDER
    ch_card = checklist[checklist.index('data-code="CH"') : checklist.index('data-code="HO"')]
    assert re.search(r'data-testid="linked-lines">[^<]*none', ch_card)
    assert "linked-line" not in ch_card.replace("linked-lines", "")
    note = alice_client.get(f"/notes/{create_note(alice_client, case)}/").content.decode()
    assert "no catalogue category" in note
    listed = note[note.index("Every category of catalogue version 2") :]
    template = services.mii_template()["categories"]
    positions = [listed.index(f">{c['name_en']}<") for c in template]
    assert len(positions) == 11 and positions == sorted(positions)
    alice_client.cookies["django_language"] = "de"
    page = alice_client.get(f"/cases/{case.pk}/").content.decode()
    assert "keine Katalogkategorie" in page


def test_the_template_fixture_holds_only_the_single_therapy_types_each_with_its_source():
    template = services.mii_template()
    codes = [c["code"] for c in template["categories"]]
    assert codes == MII_ORDER
    assert not {"CI", "CZ", "CIZ", "IZ", "KW"} & set(codes)
    for category in template["categories"]:
        assert category["source"] == {
            "system": MII_URL,
            "version": "2025.0.0",
            "code": category["code"],
        }
        assert category["source_section"] == f"{MII_URL}|2025.0.0"
        assert category["source_quote"] and category["name_en"] and category["name_de"]
        assert not {"description_en", "description_de"} & set(category)  # labels only
    assert MII_URL in template["credit"] and "2025.0.0" in template["credit"]


def test_the_template_fixture_is_what_the_builder_makes_from_shared_data(monkeypatch):
    from pathlib import Path

    fixtures = Path(services.MII_TEMPLATE).parent
    data = fixtures.parent.parent / "shared" / "data" / "obds_mii_onko_codesystems"
    if not data.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    monkeypatch.syspath_prepend(str(fixtures))
    import build_catalogue_templates

    assert build_catalogue_templates.build() == services.mii_template()
    # The builder refuses a combination code or KW, should one be added to its list.
    monkeypatch.setattr(build_catalogue_templates, "CODES", [*MII_ORDER, "KW"])
    with pytest.raises(ValueError, match="never categories"):
        build_catalogue_templates.build()
