"""Gene symbols as HGNC approves them, from the shipped list `fixtures/hgnc_symbols.tsv` (built
by `fixtures/build_hgnc_symbols.py`; credits in README.md). Pure Python, no Django.

A name is looked up, never interpreted: the answer says whether it is an approved symbol, a
previous or alias symbol of exactly one approved symbol, or not in the list. The list is read
from the repository once per process, on first use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

SYMBOLS_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "hgnc_symbols.tsv"

APPROVED = "approved"
ALIAS = "alias"  # a previous or alias symbol of one approved symbol
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Lookup:
    state: str  # approved | alias | unknown
    symbol: str  # the approved symbol (approved, alias), or the name as given (unknown)


@functools.cache
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """(approved symbols by upper-case spelling, approved symbol of each alias by upper-case
    spelling)."""
    approved: dict[str, str] = {}
    aliases: dict[str, str] = {}
    with SYMBOLS_FILE.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            name, _tab, symbol = line.rstrip("\n").partition("\t")
            if symbol:
                aliases[name.upper()] = symbol
            else:
                approved[name.upper()] = name
    return approved, aliases


def lookup(name: str) -> Lookup:
    """What the list says about `name` (case-insensitive; surrounding spaces ignored)."""
    text = name.strip()
    approved, aliases = _tables()
    key = text.upper()
    if key in approved:
        return Lookup(APPROVED, approved[key])
    if key in aliases:
        return Lookup(ALIAS, aliases[key])
    return Lookup(UNKNOWN, text)


def approved_count() -> int:
    return len(_tables()[0])
