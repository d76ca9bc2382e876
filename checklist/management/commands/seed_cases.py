"""Seeds synthetic cases with realistic mixes of rows (for benchmarks and demos)."""

import random
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from checklist.audit import audit_context
from checklist.models import (
    AdverseEvent,
    Biomarker,
    Case,
    ImmuneFinding,
    Metastasis,
    PerformanceStatus,
    Practice,
    StagingRecord,
    TherapyLine,
    Tumour,
)
from checklist.progress import Progress
from checklist.services import catalogue_seed

TUMOURS = [
    ("IDC", "Breast Invasive Ductal Carcinoma", "Breast"),
    ("LUAD", "Lung Adenocarcinoma", "Lung"),
    ("COAD", "Colon Adenocarcinoma", "Bowel"),
    ("PRAD", "Prostate Adenocarcinoma", "Prostate"),
    ("CLLSLL", "Chronic Lymphocytic Leukemia/Small Lymphocytic Lymphoma", "Lymphoid"),
    ("PAAD", "Pancreatic Adenocarcinoma", "Pancreas"),
]


def seed(practice: Practice, count: int, *, seed_value: int = 7, prefix: str = "SYN") -> None:
    with Progress(f"cases for {practice.name}", count, unit="cases") as progress:
        _seed(practice, count, seed_value, prefix, progress)


def _seed(practice: Practice, count: int, seed_value: int, prefix: str, progress: Progress) -> None:
    rng = random.Random(seed_value)
    batch = 500
    for start in range(0, count, batch):
        size = min(batch, count - start)
        with transaction.atomic():
            cases = Case.objects.bulk_create(
                [
                    Case(
                        practice=practice,
                        label=f"{prefix}-{start + i:06d}",
                        year_of_birth=rng.randint(1935, 1990),
                        sex=rng.choice(["female", "male"]),
                        situation=rng.choice(
                            [
                                "first_diagnosis",
                                "recurrence",
                                "metastatic_progression",
                                "under_therapy",
                            ]
                        ),
                        metastasis_status=rng.choice(["present", "none_known", "", "not_assessed"]),
                    )
                    for i in range(size)
                ]
            )
            rows: dict[str, list[Any]] = {k: [] for k in ("t", "s", "b", "m", "l", "p", "i")}
            for case in cases:
                code, name, tissue = rng.choice(TUMOURS)
                day = date(2015, 1, 1) + timedelta(days=rng.randint(0, 3000))
                common = {"case": case, "practice": practice}
                rows["t"].append(
                    Tumour(
                        oncotree_code=code,
                        oncotree_name=name,
                        oncotree_release="oncotree_2025_10_03",
                        oncotree_tissue=tissue,
                        laterality="unknown",
                        diagnosed_on=day,
                        **common,
                    )
                )
                rows["s"].append(
                    StagingRecord(
                        staged_on=day,
                        kind="clinical",
                        system="uicc_tnm",
                        tnm_edition="8",
                        t_prefix="c",
                        t_category=rng.choice(["1", "2", "3"]),
                        n_prefix="c",
                        n_category="0",
                        m_prefix="c",
                        m_category="0",
                        **common,
                    )
                )
                for marker in rng.sample(["ER", "PR", "HER2", "PD-L1", "KRAS"], 2):
                    rows["b"].append(
                        Biomarker(name=marker, kind="somatic", status="pending", **common)
                    )
                if case.metastasis_status == "present":
                    rows["m"].append(
                        Metastasis(
                            site=rng.choice(["HEP", "OSS", "PUL", "BRA"]),
                            detected_on=day + timedelta(days=400),
                            timing="metachronous",
                            **common,
                        )
                    )
                for n in range(rng.randint(0, 3)):
                    rows["l"].append(
                        TherapyLine(
                            number=n + 1,
                            types=[rng.choice(["CH", "HO", "IM"])],
                            position="first_advanced" if n == 0 else "later_advanced",
                            started_on=day + timedelta(days=100 * (n + 1)),
                            ongoing=True,
                            **common,
                        )
                    )
                rows["p"].append(
                    PerformanceStatus(assessed_on=day, ecog=rng.randint(0, 2), **common)
                )
                rows["i"].append(ImmuneFinding(assessed_on=day, igg=rng.randint(4, 15), **common))
            for model, key in (
                (Tumour, "t"),
                (StagingRecord, "s"),
                (Biomarker, "b"),
                (Metastasis, "m"),
                (PerformanceStatus, "p"),
                (ImmuneFinding, "i"),
            ):
                model.objects.bulk_create(rows[key])
            lines = TherapyLine.objects.bulk_create(rows["l"])
            AdverseEvent.objects.bulk_create(
                [
                    AdverseEvent(
                        case_id=line.case_id,
                        practice=practice,
                        line=line,
                        term="fatigue",
                        ctcae_version="5.0",
                        grade=str(rng.randint(1, 3)),
                    )
                    for line in lines
                ]
            )
        progress.update(size)


class Command(BaseCommand):
    help = "Seed synthetic cases (tumour, staging, biomarkers, metastases, lines, findings)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cases", type=int, default=1000)
        parser.add_argument("--practice", default="Synthetic Practice")

    def handle(self, *args: Any, **options: Any) -> None:
        practice, _created = Practice.objects.get_or_create(name=options["practice"])
        catalogue_seed(practice=practice)
        with audit_context(path="manage.py seed_cases"):
            seed(practice, options["cases"], prefix=f"SYN{practice.pk}")
