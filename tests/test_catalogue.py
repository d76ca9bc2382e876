"""The practice's catalogue of therapy categories: versions, drafts, editing, publishing, the
diff between versions, and who may do what."""

import pytest
from django.core.exceptions import ValidationError

from checklist import services
from checklist.models import CatalogueVersion, Category


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
