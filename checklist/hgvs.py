"""The syntax of a variant's HGVS notation, coding DNA (c.) and protein (p.): checked, never
interpreted. Pure Python, no Django.

`check_coding` and `check_protein` answer None for text that follows the HGVS syntax covered
here, or the code of what is wrong (the form says it in words). No reference sequence is read,
no effect is predicted and nothing is called pathogenic, actionable or anything else: a
well-formed notation says nothing about the variant.

Covered (the HGVS nomenclature, varnomen.hgvs.org; the common single-change forms):
- c.: substitution (c.2573T>G, c.-14G>A, c.*32A>G, c.88+1G>T, c.89-2A>C), deletion
  (c.2235_2249del, c.76delA), duplication (c.76dup), insertion (c.76_77insTTG),
  deletion-insertion (c.112_117delinsTG), inversion (c.76_83inv), no change (c.76=, c.=).
- p.: the same kinds with amino acids in three-letter (p.Leu858Arg) or one-letter code
  (p.L858R), never mixed; predicted changes in parentheses (p.(Leu858Arg)); nonsense
  (p.Arg97Ter, p.R97*), synonymous (p.Leu858=), frameshift (p.Arg97ProfsTer23, p.R97fs),
  extension (p.Met1ext-5, p.Ter110GlnextTer17), no protein (p.0), unknown (p.?).
Alleles with several changes ("c.[76A>C;83G>C]"), repeats and uncertain positions are not
covered: they are refused with the syntax message and go into the comment.
"""

from __future__ import annotations

import re

# What is wrong with a notation.
NO_PREFIX_C = "no_prefix_c"  # a coding notation that does not start with "c."
NO_PREFIX_P = "no_prefix_p"  # a protein notation that does not start with "p."
PROTEIN_IN_CODING = "protein_in_coding"  # "p.…" typed where "c.…" belongs
CODING_IN_PROTEIN = "coding_in_protein"  # "c.…" typed where "p.…" belongs
SPACES = "spaces"  # white space inside the notation
SYNTAX = "syntax"
SAME_BASE = "same_base"  # a substitution to the same nucleotide (c.76A>A): write c.76=
RANGE_ORDER = "range_order"  # a range whose end is not after its start
MIXED_CODES = "mixed_codes"  # three-letter and one-letter amino-acid codes together

_POSITION = r"(?:[-*]?[0-9]+)(?:[+-][0-9]+)?"
_BASES = r"[ACGT]+"
_CODING = re.compile(
    rf"""
    (?P<start>{_POSITION})(?:_(?P<end>{_POSITION}))?
    (?:
        (?P<ref>[ACGT])>(?P<alt>[ACGT])     # substitution: a single position only
      | delins{_BASES}
      | del(?:{_BASES})?
      | dup(?:{_BASES})?
      | ins{_BASES}                           # insertion: between two positions
      | inv                                   # inversion: a range
      | =
    )
    """,
    re.VERBOSE,
)

_THREE = (
    "Ala|Arg|Asn|Asp|Cys|Gln|Glu|Gly|His|Ile|Leu|Lys|Met|Phe|Pro|Ser|Thr|Trp|Tyr|Val|Sec|Pyl|Xaa"
)
_ONE = r"[ACDEFGHIKLMNPQRSTVWYUOX]"


def _protein_pattern(amino: str, stop: str) -> re.Pattern[str]:
    acid = f"(?:{amino}|{stop})"
    return re.compile(
        rf"""
        (?P<start>{acid}[0-9]+)(?:_(?P<end>{acid}[0-9]+))?
        (?:
            =                                           # synonymous
          | delins(?:{acid})+
          | del
          | dup
          | ins(?:{acid})+                              # insertion: between two positions
          | (?:{amino})?fs(?:(?:{stop})(?:[0-9]+|\?)?)?  # frameshift
          | (?:{acid})?ext(?:-[0-9]+|(?:{stop})(?:[0-9]+|\?))  # extension
          | {acid}                                      # substitution, nonsense
        )
        """,
        re.VERBOSE,
    )


_PROTEIN = {
    "three": _protein_pattern(_THREE, "Ter"),
    "one": _protein_pattern(_ONE, r"\*"),
    "mixed": _protein_pattern(f"{_THREE}|{_ONE}", r"Ter|\*"),
}
_WHOLE_PROTEIN = {"=", "?", "0", "0?"}


def _first_number(position: str) -> int | None:
    """The plain number of a position ("123"), or None for one with a sign, an offset or an
    amino acid that makes the order not a plain comparison."""
    return int(position) if position.isdigit() else None


def check_coding(text: str) -> str | None:
    """None if `text` is a coding DNA notation in the syntax covered here, else what is wrong."""
    text = text.strip()
    if re.search(r"\s", text):
        return SPACES
    if text.startswith("p."):
        return PROTEIN_IN_CODING
    if not text.startswith("c."):
        return NO_PREFIX_C
    body = text[2:]
    if body == "=":
        return None
    match = _CODING.fullmatch(body)
    if match is None:
        return SYNTAX
    start, end = match["start"], match["end"]
    if match["ref"] is not None:
        if end is not None:
            return SYNTAX
        if match["ref"] == match["alt"]:
            return SAME_BASE
    if (body.endswith("inv") or "ins" in body.replace("delins", "")) and end is None:
        return SYNTAX
    if end is not None:
        first, last = _first_number(start), _first_number(end)
        if first is not None and last is not None and last <= first:
            return RANGE_ORDER
    return None


def check_protein(text: str) -> str | None:
    """None if `text` is a protein notation in the syntax covered here, else what is wrong."""
    text = text.strip()
    if re.search(r"\s", text):
        return SPACES
    if text.startswith("c."):
        return CODING_IN_PROTEIN
    if not text.startswith("p."):
        return NO_PREFIX_P
    body = text[2:]
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]  # a predicted change
    if body in _WHOLE_PROTEIN:
        return None
    match = None
    for kind in ("three", "one"):
        match = _PROTEIN[kind].fullmatch(body)
        if match is not None:
            break
    if match is None:
        return MIXED_CODES if _PROTEIN["mixed"].fullmatch(body) else SYNTAX
    change = body[len(match["start"]) + len(match["end"] or "") + (1 if match["end"] else 0) :]
    if change.startswith("ins") and match["end"] is None:
        return SYNTAX
    if match["end"] is not None:
        first = int(re.sub(r"\D", "", match["start"]))
        last = int(re.sub(r"\D", "", match["end"]))
        if last <= first:
            return RANGE_ORDER
    return None
