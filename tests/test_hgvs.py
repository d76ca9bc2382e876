"""The HGVS syntax check (checklist/hgvs.py) and the shipped gene list (checklist/genes.py):
plain unit tests and hypothesis, no database."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checklist import genes, hgvs

# --- coding DNA (c.) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "c.2573T>G",  # EGFR L858R
        "c.35G>A",
        "c.-14G>A",
        "c.*32A>G",
        "c.3028+1G>T",  # a splice-site change (MET exon 14 skipping)
        "c.89-2A>C",
        "c.2235_2249del",
        "c.76delA",
        "c.76dup",
        "c.2300_2308dupGCCAGCGTG",
        "c.76_77insTTG",
        "c.112_117delinsTG",
        "c.76_83inv",
        "c.76=",
        "c.=",
        "c.88+1_88+2del",
        "  c.2573T>G  ",  # surrounding spaces are ignored
    ],
)
def test_it_accepts_coding_notations(text):
    assert hgvs.check_coding(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2573T>G", hgvs.NO_PREFIX_C),
        ("C.2573T>G", hgvs.NO_PREFIX_C),
        ("p.Leu858Arg", hgvs.PROTEIN_IN_CODING),
        ("c.2573 T>G", hgvs.SPACES),
        ("c.2573T>A>G", hgvs.SYNTAX),
        ("c.2573X>G", hgvs.SYNTAX),
        ("c.2573t>g", hgvs.SYNTAX),
        ("c.2573T>T", hgvs.SAME_BASE),
        ("c.76_77T>G", hgvs.SYNTAX),  # a substitution has one position
        ("c.76insT", hgvs.SYNTAX),  # an insertion lies between two positions
        ("c.76inv", hgvs.SYNTAX),
        ("c.2249_2235del", hgvs.RANGE_ORDER),
        ("c.76_76del", hgvs.RANGE_ORDER),
        ("c.[76A>C;83G>C]", hgvs.SYNTAX),  # several changes: not covered
        ("c.", hgvs.SYNTAX),
        ("c.L858R", hgvs.SYNTAX),
    ],
)
def test_it_names_what_is_wrong_with_a_coding_notation(text, problem):
    assert hgvs.check_coding(text) == problem


# --- protein (p.) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "p.Leu858Arg",
        "p.L858R",
        "p.(Leu858Arg)",
        "p.(L858R)",
        "p.Gly12Cys",
        "p.V600E",
        "p.Arg97Ter",
        "p.R97*",
        "p.Leu858=",
        "p.Glu746_Ala750del",
        "p.E746_A750del",
        "p.Ala767_Val769dup",
        "p.D770_N771insSVD",
        "p.Asp770_Asn771insSerValAsp",
        "p.Cys28delinsTrpVal",
        "p.Arg97ProfsTer23",
        "p.Arg97fs",
        "p.R97Pfs*23",
        "p.Met1ext-5",
        "p.Ter110GlnextTer17",
        "p.*110Qext*17",
        "p.0",
        "p.?",
        "p.(=)",
    ],
)
def test_it_accepts_protein_notations(text):
    assert hgvs.check_protein(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("L858R", hgvs.NO_PREFIX_P),
        ("Leu858Arg", hgvs.NO_PREFIX_P),
        ("c.2573T>G", hgvs.CODING_IN_PROTEIN),
        ("p.Leu858R", hgvs.MIXED_CODES),
        ("p.L858Arg", hgvs.MIXED_CODES),
        ("p.leu858arg", hgvs.SYNTAX),
        ("p.Leu 858Arg", hgvs.SPACES),
        ("p.(Leu858Arg", hgvs.SYNTAX),
        ("p.Xyz858Arg", hgvs.SYNTAX),
        ("p.Leu858", hgvs.SYNTAX),
        ("p.Asp770insSer", hgvs.SYNTAX),  # an insertion lies between two residues
        ("p.Ala750_Glu746del", hgvs.RANGE_ORDER),
        ("p.", hgvs.SYNTAX),
    ],
)
def test_it_names_what_is_wrong_with_a_protein_notation(text, problem):
    assert hgvs.check_protein(text) == problem


# --- properties ------------------------------------------------------------------------------

THREE = [
    "Ala", "Arg", "Asn", "Asp", "Cys", "Gln", "Glu", "Gly", "His", "Ile",
    "Leu", "Lys", "Met", "Phe", "Pro", "Ser", "Thr", "Trp", "Tyr", "Val",
]  # fmt: skip
ONE = list("ARNDCQEGHILKMFPSTWYV")
BASE = st.sampled_from("ACGT")
POSITION = st.integers(min_value=1, max_value=99_999)


@st.composite
def coding(draw):
    start = draw(POSITION)
    kind = draw(st.sampled_from(["sub", "del", "dup", "ins", "delins", "inv"]))
    if kind == "sub":
        ref = draw(BASE)
        alt = draw(BASE.filter(lambda b: b != ref))
        offset = draw(st.sampled_from(["", "+1", "-2", "+15"]))
        prefix = draw(st.sampled_from(["", "-", "*"]))
        return f"c.{prefix}{start}{offset}{ref}>{alt}"
    end = start + draw(st.integers(min_value=1, max_value=50))
    bases = "".join(draw(st.lists(BASE, min_size=1, max_size=12)))
    return {
        "del": f"c.{start}_{end}del",
        "dup": f"c.{start}dup",
        "ins": f"c.{start}_{start + 1}ins{bases}",
        "delins": f"c.{start}_{end}delins{bases}",
        "inv": f"c.{start}_{end}inv",
    }[kind]


@st.composite
def protein(draw, codes):
    def acid():
        return draw(st.sampled_from(codes))

    stop = "Ter" if codes is THREE else "*"
    start = draw(POSITION)
    end = start + draw(st.integers(min_value=1, max_value=30))
    change = draw(st.sampled_from(["sub", "stop", "del", "dup", "ins", "fs", "same"]))
    body = {
        "sub": f"{acid()}{start}{acid()}",
        "stop": f"{acid()}{start}{stop}",
        "del": f"{acid()}{start}_{acid()}{end}del",
        "dup": f"{acid()}{start}dup",
        "ins": f"{acid()}{start}_{acid()}{start + 1}ins{acid()}{acid()}",
        "fs": f"{acid()}{start}{acid()}fs{stop}{draw(POSITION)}",
        "same": f"{acid()}{start}=",
    }[change]
    return f"p.({body})" if draw(st.booleans()) else f"p.{body}"


@given(coding())
def test_every_generated_coding_notation_is_accepted(text):
    assert hgvs.check_coding(text) is None


@given(st.one_of(protein(THREE), protein(ONE)))
def test_every_generated_protein_notation_is_accepted(text):
    assert hgvs.check_protein(text) is None


@given(coding())
def test_a_coding_notation_without_its_prefix_or_in_the_protein_field_is_refused(text):
    assert hgvs.check_coding(text[2:]) == hgvs.NO_PREFIX_C
    assert hgvs.check_protein(text) == hgvs.CODING_IN_PROTEIN


@given(protein(THREE))
def test_a_one_letter_code_in_a_three_letter_notation_is_named_as_mixed(text):
    mixed = text.replace("Leu", "L", 1) if "Leu" in text else None
    if mixed and mixed != text:
        assert hgvs.check_protein(mixed) in (hgvs.MIXED_CODES, None)


@given(st.text(max_size=60))
def test_any_text_gets_an_answer_never_an_error(text):
    for check in (hgvs.check_coding, hgvs.check_protein):
        answer = check(text)
        assert answer is None or isinstance(answer, str)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_only_text_with_its_prefix_is_accepted(text):
    if hgvs.check_coding(text) is None:
        assert text.strip().startswith("c.")
    if hgvs.check_protein(text) is None:
        assert text.strip().startswith("p.")


def test_the_check_interprets_nothing():
    """The module says nothing about a variant's meaning: no word of it names an effect."""
    source = inspect.getsource(hgvs).lower()
    for word in ("pathogen", "actionab", "tier", "benign", "drug", "oncogenic", "evidence"):
        assert word not in source.split('"""', 2)[2], word


# --- the gene list ---------------------------------------------------------------------------


def test_the_gene_list_knows_approved_symbols_in_any_case():
    assert genes.lookup("EGFR") == genes.Lookup(genes.APPROVED, "EGFR")
    assert genes.lookup(" egfr ") == genes.Lookup(genes.APPROVED, "EGFR")
    assert genes.lookup("EML4").state == genes.APPROVED
    assert genes.approved_count() > 40_000


def test_the_gene_list_names_the_approved_symbol_of_an_alias():
    assert genes.lookup("HER2") == genes.Lookup(genes.ALIAS, "ERBB2")
    assert genes.lookup("PD-L1") == genes.Lookup(genes.ALIAS, "CD274")


def test_a_name_not_in_the_list_is_unknown_and_kept_as_typed():
    assert genes.lookup(" Zq-not-a-gene ") == genes.Lookup(genes.UNKNOWN, "Zq-not-a-gene")
