"""Issue 15's third case, recorded through the views as a physician would: an HR-positive
breast cancer with local episodes (surgery, adjuvant radiotherapy) and three systemic lines,
most dates known only to the month or the year. Every value must reach the case page, the
note page, the PDF and the Markdown as entered: no month padded to a day, no number on a
local episode, no line label that reads "adjuvant 1"."""

from __future__ import annotations

import html as html_lib
import re
import subprocess

from checklist.models import Biomarker, Metastasis, TherapyLine, Tumour
from tests.factories import post_row, set_metastasis_status, sign_note


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", html)))


def _pdf_text(pdf: bytes) -> str:
    result = subprocess.run(
        ["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return re.sub(r"\s+", " ", result.stdout.decode())


def _flat(words: str) -> str:
    # Label and value as each rendering joins them ("Label value", "Label: value").
    return words.replace(": ", " ").replace('"', "").replace("> ", "")


EPISODES = [
    {
        "kind": "surgery",
        "types": ["OP"],
        "regimen": "Breast-conserving surgery and sentinel node biopsy",
        "position": "O",
        "intent": "K",
        "started_on": "2019-04",
        "ended_on": "2019-04",
        "end_reason": "E",
    },
    {
        "kind": "radiotherapy",
        "types": ["ST"],
        "regimen": "Whole-breast 40 Gy / 15 fractions",
        "position": "A",
        "intent": "K",
        "started_on": "2019-06",
        "ended_on": "2019-07",
        "end_reason": "E",
    },
    {
        "kind": "systemic",
        "number": "1",
        "position": "A",
        "types": ["HO"],
        "agents": "Tamoxifen",
        "intent": "K",
        "started_on": "2019-08",
        "ended_on": "2020",
        "end_reason": "P",
    },
    {
        "kind": "systemic",
        "number": "2",
        "position": "first_advanced",
        "types": ["HO", "ZS"],
        "agents": "Letrozole\nPalbociclib",
        "intent": "P",
        "started_on": "2021-01",
        "ended_on": "2022-03",
        "cycles": "14",
        "dose_reductions": "1",
        "response": "PR",
        "response_criteria": "recist_1_1",
        "end_reason": "P",
    },
    {
        "kind": "systemic",
        "number": "3",
        "position": "later_advanced",
        "types": ["HO", "ZS"],
        "agents": "Fulvestrant\nAlpelisib",
        "intent": "P",
        "started_on": "2022-04",
        "ongoing": "on",
    },
]


def test_a_breast_cancer_with_local_and_systemic_episodes_and_month_dates_round_trips(
    alice_client, case
):
    assert (
        post_row(
            alice_client,
            case,
            "tumour",
            {
                "oncotree": "Breast Invasive Ductal Carcinoma (IDC)",
                "laterality": "left",
                "diagnosed_on": "2019-03",
                "diagnosis_basis": "histology",
                "grade": "G2",
            },
        ).status_code
        == 302
    )
    for name, result in (("ER", "90 %"), ("PR", "20 %"), ("HER2", "1+")):
        response = post_row(
            alice_client,
            case,
            "biomarker",
            {
                "name": name,
                "kind": "somatic",
                "status": "result",
                "specimen_type": "tissue",
                "specimen": "core biopsy, left breast",
                "sampled_on": "2019-03",
                "method": "ihc",
                "categorical_result": result,
            },
        )
        assert response.status_code == 302, response.content[-2000:]
    assert set_metastasis_status(alice_client, case, "present").status_code in (200, 302)
    response = post_row(
        alice_client,
        case,
        "metastasis",
        {
            "site": "OSS",
            "side": "midline",
            "level": "T8",
            "largest_size_mm": "14,5",
            "lesions": "3",
            "detected_on": "2020-12",
            "timing": "metachronous",
            "established_by": "pet_ct",
        },
    )
    assert response.status_code == 302, response.content[-2000:]
    for episode in EPISODES:
        response = post_row(alice_client, case, "line", episode)
        assert response.status_code == 302, (episode, response.content[-3000:])

    # Stored as entered: the first day of each month or year with its precision.
    assert Tumour.objects.get().diagnosed_on_precision == "month"
    assert {b.sampled_on_precision for b in Biomarker.objects.all()} == {"month"}
    metastasis = Metastasis.objects.get()
    assert (
        metastasis.level,
        str(metastasis.largest_size_mm),
        metastasis.detected_on_precision,
    ) == (
        "T8",
        "14.5",
        "month",
    )
    episodes = {e.regimen or ",".join(e.agents): e for e in TherapyLine.objects.all()}
    assert episodes["Breast-conserving surgery and sentinel node biopsy"].number is None
    assert episodes["Whole-breast 40 Gy / 15 fractions"].number is None
    assert episodes["Tamoxifen"].ended_on_precision == "year"
    assert episodes["Letrozole,Palbociclib"].agents == ["Letrozole", "Palbociclib"]

    page = _text(alice_client.get(f"/cases/{case.pk}/").content.decode())
    for value in (
        "Breast Invasive Ductal Carcinoma",
        "2019-03",
        "ER",
        "90 %",
        "HER2",
        "1+",
        "T8",
        "14.5",
        "Surgery · 2019-04",
        "Radiotherapy · 2019-06",
        "Line 1 · adjuvant",
        "Line 2 · first line for advanced disease",
        "Line 3 · later line for advanced disease",
        "Letrozole",
        "Palbociclib",
        "Fulvestrant",
        "Alpelisib",
        "2019-08 – 2020",
        "2021-01 – 2022-03",
    ):
        assert value in page, value
    assert "2019-03-01" not in page and "2020-01-01" not in page
    assert "adjuvant 1" not in page and "Line 0" not in page

    response = alice_client.post(
        f"/cases/{case.pk}/notes/new/",
        {
            "registering_physician": "Dr. Alice",
            "target_board": "Brustkonferenz",
            "board_type": "postth",
            "question": "Next line after progression under fulvestrant and alpelisib?",
        },
    )
    assert response.status_code == 302, response.content[-2000:]
    base = response["Location"]
    expected = [
        "Surgery · 2019-04",
        "Radiotherapy · 2019-06",
        "Line 1 · adjuvant",
        "Line 2 · first line for advanced disease",
        "Line 3 · later line for advanced disease",
        "Regimen Breast-conserving surgery and sentinel node biopsy",
        "Regimen Whole-breast 40 Gy / 15 fractions",
        "Agents Tamoxifen",
        "Start 2019-08",
        "End 2020",
        "Start 2021-01",
        "End 2022-03",
        "Cycles 14",
        "Dose reductions 1",
        "Best response partial response",
        "Response criteria RECIST 1.1",
        "Start 2022-04",
        "Date of diagnosis 2019-03",
        "Level or segment T8",
        "Largest size (mm) 14.5",
        "Number of lesions 3",
        "Detected on 2020-12",
        "Detection method PET-CT",
    ]
    note_pk = int(base.strip("/").split("/")[-1])
    draft = _text(alice_client.get(base).content.decode())
    assert sign_note(alice_client, note_pk).status_code == 302
    renderings = {
        "draft page": draft,
        "signed page": _text(alice_client.get(base).content.decode()),
        "PDF": _pdf_text(alice_client.get(f"{base}v1/pdf/").content),
        "Markdown": re.sub(r"\s+", " ", alice_client.get(f"{base}v1/text/").content.decode()),
    }
    for where, text in renderings.items():
        missing = [value for value in expected if _flat(value) not in _flat(text)]
        assert not missing, (where, missing)
        for padded in ("2019-03-01", "2019-04-01", "2020-01-01", "2020-12-01", "2022-04-01"):
            assert padded not in text, (where, padded)
        assert "Line 0" not in text and "adjuvant 1" not in text, where
