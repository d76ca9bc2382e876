"""Text fields refuse invisible characters: control characters (C0, DEL, C1) anywhere and
bidi overrides; only multi-line fields (Textareas) keep line breaks and tabs."""

import inspect

import pytest
from django import forms as django_forms
from django.utils import translation

from checklist import forms
from checklist.models import BoardNoteVersion, Case
from tests.factories import note_data, post_row

SSRF_LABEL = "P0\r;content:url(http://127.0.0.1:9977/x);"

CONTROL = ["\r", "\n", "\t", "\x0c", "\x0b", "\x1b", "\x7f", "\x85", "\x9b"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


def _case_data(label):
    return {"label": label, "year_of_birth": 1970, "sex": "female", "situation": "first_diagnosis"}


def test_a_label_with_a_carriage_return_and_css_is_refused_with_a_message(alice_client, codelists):
    response = alice_client.post("/cases/new/", _case_data(SSRF_LABEL))
    assert response.status_code == 200
    assert "This field takes one line: remove the line break (U+000D)." in response.content.decode()
    assert not Case.objects.exists()


@pytest.mark.parametrize("char", [c for c in CONTROL + BIDI if c not in "\r\n"])
def test_a_label_refuses_every_control_character_and_bidi_override(alice_client, codelists, char):
    response = alice_client.post("/cases/new/", _case_data(f"BC{char}1"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"(U+{ord(char):04X})" in page
    assert ("direction override" if char in BIDI else "control character") in page
    assert not Case.objects.exists()


def test_a_plain_label_with_letters_of_any_script_is_accepted(alice_client, codelists):
    label = "Ärztin-ÖÜ 12 · עברית عربي"
    response = alice_client.post("/cases/new/", _case_data(label))
    assert response.status_code == 302
    assert Case.objects.get().label == label


def test_a_single_line_field_of_a_row_refuses_a_bidi_override(alice_client, case):
    response = post_row(
        alice_client,
        case,
        "medication",
        {"name": "Metformin\u202e gnm 0001", "kind": "other", "dose": ""},
    )
    assert response.status_code == 200
    assert "(U+202E)" in response.content.decode()
    assert not case.medications.exists()


def test_a_multi_line_field_keeps_line_breaks_and_tabs_but_not_other_controls(alice_client, case):
    question = "First line\r\nsecond line\twith a tab"
    response = alice_client.post(f"/cases/{case.pk}/notes/new/", note_data(question=question))
    assert response.status_code == 302
    assert BoardNoteVersion.objects.get().question.replace("\r\n", "\n") == question.replace(
        "\r\n", "\n"
    )
    for bad in ("\x0c", "\x1b", "\u2066"):
        response = alice_client.post(
            f"/cases/{case.pk}/notes/new/", note_data(question=f"Why{bad} not?")
        )
        assert response.status_code == 200
        assert f"(U+{ord(bad):04X})" in response.content.decode()
    assert BoardNoteVersion.objects.count() == 1


def test_the_message_is_translated():
    form = forms.AmendForm({"reason": "Grund\u202e"})
    with translation.override("de"):
        assert not form.is_valid()
        message = form.errors["reason"][0]
    assert "(U+202E)" in message and "Remove it" not in message


def test_passwords_are_left_alone():
    form = forms.LoginForm(data={"username": "alice\x1b", "password": "pa\tss"})
    form.is_valid()
    assert "(U+001B)" in str(form.errors["username"])
    assert "U+0009" not in str(form.errors)


def _project_forms():
    return [
        cls
        for _name, cls in inspect.getmembers(forms, inspect.isclass)
        if cls.__module__ == forms.__name__ and issubclass(cls, django_forms.BaseForm)
    ]


def test_every_form_of_the_project_checks_its_text_fields():
    found = _project_forms()
    assert len(found) > 20
    unchecked = [cls.__name__ for cls in found if not issubclass(cls, forms.TextCharactersMixin)]
    assert not unchecked, f"forms without TextCharactersMixin: {unchecked}"
