"""The tool writes no recommending word (EN/DE, DESIGN.md) outside the disclaimer: templates,
fixtures, translations here; rendered pages through the conftest response check."""

import json
from pathlib import Path

import pytest

from checklist.wording import recommending_words

ROOT = Path(__file__).resolve().parent.parent


def _files():
    for folder, pattern in [
        ("templates", "**/*.html"),
        ("templates", "**/*.txt"),
        ("templates", "**/*.md"),
        ("fixtures", "*.json"),
        ("locale", "**/*.po"),
        ("checklist/static/checklist", "*.*"),
    ]:
        yield from sorted((ROOT / folder).glob(pattern))


def _without_disclaimer(path, text: str) -> str:
    """Disclaimer sentences are exempt: in .po files they carry the translator comment
    "Translators: disclaimer"; in the catalogue fixture they are its "disclaimer" entry."""
    if path.suffix == ".po":
        entries = text.split("\n\n")
        return "\n\n".join(e for e in entries if "#. Translators: disclaimer" not in e)
    if path.name == "catalogue.json":
        data = json.loads(text)
        data.pop("disclaimer")
        return json.dumps(data, ensure_ascii=False)
    return text


@pytest.mark.parametrize("path", list(_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_text_has_no_recommending_word(path):
    text = _without_disclaimer(path, path.read_text(encoding="utf-8"))
    found = recommending_words(text, html=path.suffix == ".html")
    assert not found, f"{path.relative_to(ROOT)}: {found}"


@pytest.mark.parametrize(
    "text",
    [
        "Chemotherapy is recommended",
        "the patient is eligible",
        "Die Therapie ist indiziert",
        "eine Empfehlung",
        "wir empfehlen",
        "ist angezeigt",
        "geeignete Patienten",
        "sinnvoll kombinieren",
        "the best option here",
        "a suitable candidate",
        "we suggest",
    ],
)
def test_the_check_catches_recommending_words(text):
    assert recommending_words(text)


def test_the_disclaimer_and_physician_quotes_are_exempt():
    html = (
        "<p data-disclaimer>Whether therapies are appropriate is assessed individually.</p>"
        "<blockquote data-physician-text>I recommend discussing this.</blockquote>"
        "<p>Every category is shown.</p>"
    )
    assert recommending_words(html, html=True) == []
    assert recommending_words(html + "<p>recommended</p>", html=True) == ["recommended"]
