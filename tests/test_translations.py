"""The German interface is complete: every string the source marks for translation has a German
entry in locale/de, none is empty or fuzzy (Django ignores fuzzy entries), and the few words
that need German of their own (contexts, the board note's numbers) get it. No database."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext, pgettext

from checklist import notes
from checklist.models import AeCourse, OrganFunction

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "de" / "LC_MESSAGES" / "django.po"
# What makemessages reads: the project's source and its catalogue, nothing else.
SOURCE = ["checklist", "templates", "config", "locale", "manage.py"]


@dataclass
class Entry:
    context: str | None = None
    msgid: str = ""
    plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.context, self.msgid)

    def __str__(self) -> str:
        return f"{self.context}|{self.msgid}" if self.context else self.msgid


def _unquote(text: str) -> str:
    return re.sub(
        r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text[1:-1]
    )


def parse_po(text: str) -> list[Entry]:
    """The active entries of a .po file (obsolete "#~" entries are left out), header
    excluded. A small reader of the format gettext writes: keywords, quoted strings that
    continue on the following lines, "#," flags."""
    entries = []
    for block in re.split(r"\n\s*\n", text):
        entry = Entry()
        target: tuple[str, int] | None = None
        seen = False
        for line in block.splitlines():
            if line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
                continue
            if line.startswith("#") or not line.strip():
                continue
            if line.startswith('"'):  # continues the keyword above
                assert target is not None, block
                _append(entry, target, _unquote(line))
                continue
            keyword, _sep, value = line.partition(" ")
            seen = True
            if keyword.startswith("msgstr["):
                target = ("msgstr", int(keyword[7:-1]))
            else:
                target = (keyword, 0)
            _set(entry, target, _unquote(value))
        if seen and entry.msgid:
            entries.append(entry)
    return entries


def _set(entry: Entry, target: tuple[str, int], value: str) -> None:
    keyword, n = target
    if keyword == "msgctxt":
        entry.context = value
    elif keyword == "msgid":
        entry.msgid = value
    elif keyword == "msgid_plural":
        entry.plural = value
    elif keyword == "msgstr":
        entry.msgstr[n] = value


def _append(entry: Entry, target: tuple[str, int], value: str) -> None:
    keyword, n = target
    current = {
        "msgctxt": entry.context or "",
        "msgid": entry.msgid,
        "msgid_plural": entry.plural or "",
        "msgstr": entry.msgstr.get(n, ""),
    }[keyword]
    _set(entry, target, current + value)


def makemessages_options() -> list[str]:
    """The options of `make makemessages`: one definition, in the Makefile."""
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^MAKEMESSAGES_OPTIONS := (.+)$", makefile, re.MULTILINE)
    assert match, "Makefile defines MAKEMESSAGES_OPTIONS"
    return match.group(1).split()


def untranslated(entries: list[Entry]) -> list[str]:
    problems = []
    for entry in entries:
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {entry}")
        expected = [0, 1] if entry.plural is not None else [0]
        if any(not entry.msgstr.get(n) for n in expected):
            problems.append(f"no German: {entry}")
    return problems


def test_it_parses_contexts_plurals_flags_and_continued_lines():
    entries = parse_po(
        '#, fuzzy\nmsgid "a"\nmsgstr "b"\n\nmsgctxt "adverse event"\nmsgid ""\n"ongo"\n"ing"\n'
        'msgstr "anhaltend"\n\nmsgid "%(n)s case"\nmsgid_plural "%(n)s cases"\n'
        'msgstr[0] "%(n)s Fall"\nmsgstr[1] ""\n\n#~ msgid "gone"\n#~ msgstr ""\n'
    )
    assert [e.key for e in entries] == [
        (None, "a"),
        ("adverse event", "ongoing"),
        (None, "%(n)s case"),
    ]
    assert untranslated(entries) == ["fuzzy: a", "no German: %(n)s case"]


def test_it_has_german_for_every_entry_and_no_fuzzy_entry():
    problems = untranslated(parse_po(PO.read_text(encoding="utf-8")))
    assert not problems, "Translate these in locale/de (and remove fuzzy flags):\n" + "\n".join(
        problems
    )


def test_it_has_every_string_the_source_marks_for_translation(tmp_path):
    """makemessages on a copy of the source, with the Makefile's options: every msgid (with
    its context) it finds must be in the committed catalogue."""
    for name in SOURCE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo")
            )
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / "locale" / "de" / "LC_MESSAGES" / "django.po").unlink()
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", *makemessages_options()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = parse_po((tmp_path / "locale" / "de" / "LC_MESSAGES" / "django.po").read_text())
    committed = {entry.key for entry in parse_po(PO.read_text(encoding="utf-8"))}
    missing = [str(entry) for entry in found if entry.key not in committed]
    assert len(found) > 500  # the run did find the source's strings
    assert not missing, "Run `make makemessages` and translate:\n" + "\n".join(missing)


def test_it_marks_strings_only_under_names_makemessages_extracts():
    """makemessages knows `_`, gettext, gettext_lazy, ngettext, pgettext ... by name: a
    string marked through another alias (`gettext_lazy as _l`) is never extracted."""
    aliases = []
    for path in [*ROOT.joinpath("checklist").rglob("*.py"), *ROOT.joinpath("config").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\b(\w*gettext\w*) as (\w+)", text):
            if match.group(2) != "_":
                aliases.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not aliases, aliases


def test_it_says_ongoing_in_the_german_of_each_context():
    # A therapy episode is "laufend"; an adverse event's course "persisting" is "anhaltend"
    # (one word in English, two in German).
    with translation.override("de"):
        assert pgettext("therapy line", "ongoing") == "laufend"
        assert str(AeCourse.PERSISTING.label) == "anhaltend"


def test_it_names_the_row_forms_and_performance_status_in_german():
    with translation.override("de"):
        titles = [
            gettext(title)
            for title in (
                "Therapy episode",
                "Primary tumour",
                "Staging record",
                "Biomarker result",
                "Metastasis",
                "Comorbidity",
                "position in the course of therapy",
                "primary tumour",
                "therapy line",
            )
        ]
        assert titles == [
            "Therapieepisode",
            "Primärtumor",
            "Staging-Eintrag",
            "Biomarker-Ergebnis",
            "Metastase",
            "Begleiterkrankung",
            "Stellung im Therapieverlauf",
            "Primärtumor",
            "Therapielinie",
        ]
        assert gettext("Performance status") == "Allgemeinzustand (ECOG)"


def _snapshot() -> dict[str, Any]:
    """A signed note's snapshot (format 2) with a decimal, an integer, a date and a TNM."""
    rows = [
        {"l": "f:organfunction.bilirubin", "k": notes.PLAIN, "v": "1.25"},
        {"l": "f:organfunction.lvef", "k": notes.PLAIN, "v": "55"},
        {"l": "f:organfunction.measured_on", "k": notes.PLAIN, "v": "2026-01-02"},
        {"l": "t:tnm", "k": notes.PLAIN, "v": "pT1.2 N0"},
    ]
    labels = {
        language: {
            "t:tumour": "Tumour",
            "t:organ_function": "Organ function",
            "f:organfunction.bilirubin": "Bilirubin",
            "f:organfunction.lvef": "LVEF",
            "f:organfunction.measured_on": "Date",
            "t:tnm": "TNM",
        }
        for language in notes.LANGUAGES
    }
    return {
        "format": notes.SNAPSHOT_FORMAT,
        "language": "en",
        "meta": {
            "practice": "P",
            "case_label": "C-1",
            "board_date": "",
            "catalogue_version": 1,
            "note_version": 1,
            "supersedes": None,
            "author": "Dana Demo",
        },
        "sections": [
            {"key": "tumour", "t": "t:tumour", "groups": [{"h": "t:organ_function", "rows": rows}]}
        ],
        "disclaimer": {"en": "", "de": ""},
        "labels": labels,
    }


def test_it_shows_the_notes_decimals_with_the_readers_separator_and_keeps_the_snapshot():
    snapshot = _snapshot()
    stored = repr(snapshot)

    def values(language: str) -> list[str]:
        (section,) = notes.document(snapshot, language).sections
        return [row.value for row in section.groups[0].rows]

    assert values("de") == ["1,25", "55", "2026-01-02", "pT1.2 N0"]
    assert values("en") == ["1.25", "55", "2026-01-02", "pT1.2 N0"]
    assert repr(snapshot) == stored


def test_it_says_once_in_german_notes_that_oncotree_names_are_english():
    for language, expected in (("de", 1), ("en", 0)):
        with translation.override(language):
            html = render_to_string(
                "checklist/_note_body.html",
                {"doc": notes.document(_snapshot(), language), "signed": True},
            )
        assert html.count("OncoTree-Tumortypen tragen englische Namen") == expected, language


def test_it_keeps_the_small_e_of_egfr_in_the_notes_labels():
    """capfirst would make eGFR (kidney function) read EGFR (a biomarker)."""
    builder = notes._Builder({})
    row = builder.field(OrganFunction(egfr=Decimal("72.5")), "egfr")
    assert row is not None
    assert builder.labels()["de"][row["l"]] == "eGFR (mL/min/1,73 m²)"
    assert builder.labels()["en"][row["l"]] == "eGFR (mL/min/1.73 m²)"
