"""The case record as read for one page: every row in a constant number of queries, the facts
handed to rules.py, and the timeline points."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from django.utils.translation import get_language

from checklist import rules, timeline
from checklist.models import (
    AdverseEvent,
    Case,
    CatalogueVersion,
    Category,
    Code,
    StagingRecord,
    TherapyLine,
)


def catalogue_categories(practice_id: int) -> Any:
    """The active categories of the practice's newest published catalogue version."""
    version = CatalogueVersion.objects.for_practice(practice_id).newest_published()
    if version is None:
        return Category.objects.none()
    return Category.objects.filter(version=version, active=True).order_by("position")


@dataclass
class CaseRecord:
    case: Case
    tumours: list[Any] = field(default_factory=list)
    staging: list[Any] = field(default_factory=list)
    biomarkers: list[Any] = field(default_factory=list)
    metastases: list[Any] = field(default_factory=list)
    lines: list[Any] = field(default_factory=list)
    performance: list[Any] = field(default_factory=list)
    immune: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)  # every adverse event of the case
    comorbidities: list[Any] = field(default_factory=list)
    organ_functions: list[Any] = field(default_factory=list)
    medications: list[Any] = field(default_factory=list)
    _labels: dict[str | None, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, case: Case) -> CaseRecord:
        """The record of `case` as the caller fetched it (not fetched again): its rows are
        prefetched onto it, one query per kind of row."""
        prefetch_related_objects(
            [case],
            "tumours",
            Prefetch("staging_records", queryset=StagingRecord.objects.select_related("tumour")),
            "biomarkers",
            "metastases",
            Prefetch("therapy_lines", queryset=TherapyLine.objects.select_related("category")),
            Prefetch("adverse_events", queryset=AdverseEvent.objects.order_by("onset_on", "pk")),
            "performance",
            "immune_findings",
            "comorbidities",
            "organ_functions",
            "medications",
        )
        events = list(case.adverse_events.all())
        lines = sorted(
            case.therapy_lines.all(),
            key=lambda line: (line.started_on, line.number or 0, line.pk),
        )
        by_pk = {line.pk: line for line in lines}
        for event in events:  # each event names its episode without a query of its own
            if event.line_id in by_pk:
                event.line = by_pk[event.line_id]
        for line in lines:
            line.__dict__["_recorded_events"] = [e for e in events if e.line_id == line.pk]
        return cls(
            case=case,
            tumours=sorted(case.tumours.all(), key=lambda t: (t.diagnosed_on or date.max, t.pk)),
            staging=sorted(case.staging_records.all(), key=lambda s: (s.staged_on, s.pk)),
            biomarkers=sorted(
                case.biomarkers.all(), key=lambda b: (b.name.lower(), b.sampled_on or date.min)
            ),
            metastases=sorted(case.metastases.all(), key=lambda m: (m.detected_on, m.pk)),
            lines=lines,
            performance=sorted(case.performance.all(), key=lambda p: p.assessed_on),
            immune=sorted(case.immune_findings.all(), key=lambda f: f.assessed_on),
            events=events,
            comorbidities=list(case.comorbidities.all()),
            organ_functions=sorted(case.organ_functions.all(), key=lambda o: o.measured_on),
            medications=list(case.medications.all()),
        )

    @property
    def immune_events(self) -> list[Any]:
        """The immune-related adverse events: the immune section's view of the one model."""
        return [e for e in self.events if e.immune_related]

    @property
    def unlinked_events(self) -> list[Any]:
        """Adverse events attributed to no recorded episode."""
        return [e for e in self.events if e.line_id is None]

    @staticmethod
    def worst_grade(line: Any) -> int | None:
        """The highest known grade of the episode's events (an unknown grade is not counted;
        `line.worst_grade()` says how many there are)."""
        worst: int | None = line.worst_grade()[0]
        return worst

    def line_facts(self) -> tuple[rules.LineFacts, ...]:
        return tuple(
            rules.LineFacts(
                id=line.pk,
                kind=line.kind,
                label=line.label(),
                number=line.number,
                types=tuple(line.types),
                regimen=line.regimen,
                start=line.partial("started_on").iso(),  # type: ignore[union-attr]
                end=end.iso() if (end := line.partial("ended_on")) else "",
                ongoing=line.ongoing,
                end_reason=line.end_reason,
                worst_grade=line.worst_grade()[0],
                unknown_grades=line.worst_grade()[1],
                category_code=line.category.code if line.category else None,
            )
            for line in self.lines
        )

    @cached_property
    def facts(self) -> rules.CaseFacts:
        case = self.case
        return rules.CaseFacts(
            tumour_types=tuple(t.oncotree_name for t in self.tumours),
            unknown_primary=case.unknown_primary,
            haematological=any(t.is_haematological for t in self.tumours),
            staging_systems=tuple(s.system for s in self.staging),
            staging_labels=tuple(
                f"{s.tnm_text or s.stage_text or s.uicc_stage} ({s.get_system_display()}"
                f"{' ' + s.tnm_edition if s.tnm_edition else ''}, {s.partial('staged_on').iso()})"
                for s in self.staging
                if s.system != "not_applicable"
            ),
            metastasis_status=case.metastasis_status,
            metastasis_sites=tuple(
                self.site_labels(get_language()).get(m.site, m.site) for m in self.metastases
            ),
            staging_dates=tuple(
                s.partial("staged_on") for s in self.staging if s.system != "not_applicable"
            ),
            metastasis_dates=tuple(m.partial("detected_on") for m in self.metastases),
            immune_findings=len(self.immune) + len(self.immune_events),
            immune_not_assessed=case.immune_not_assessed,
            no_prior_therapy=case.no_prior_therapy,
            lines=self.line_facts(),
            performance_records=len(self.performance),
            biomarkers=len(self.biomarkers),
        )

    @cached_property
    def summary(self) -> tuple[rules.FactorSummary, ...]:
        return rules.summarise(self.facts)

    @cached_property
    def gaps(self) -> tuple[str, ...]:
        return rules.gaps(self.summary)

    @cached_property
    def timing_gaps(self) -> tuple[rules.StageBeforeMetastases, ...]:
        return rules.timing_gaps(self.facts)

    def timeline(self, today: date, language: str | None = None) -> timeline.Layout | None:
        end_reasons = self.code_labels(language)["mii:therapie-ende-grund"]
        points: list[timeline.Point] = []
        for t in self.tumours:
            if t.diagnosed_on:
                points.append(
                    timeline.Point(
                        "diagnosis",
                        t.diagnosed_on,
                        t.oncotree_name,
                        precision=t.diagnosed_on_precision,
                    )
                )
        for s in self.staging:
            label = s.tnm_text or s.stage_text or s.get_system_display()
            points.append(
                timeline.Point("staging", s.staged_on, label, precision=s.staged_on_precision)
            )
        for m in self.metastases:
            points.append(
                timeline.Point(
                    "metastasis",
                    m.detected_on,
                    self.site_labels(language).get(m.site, m.site),
                    precision=m.detected_on_precision,
                )
            )
        for index, line in enumerate(self.lines):
            grade = self.worst_grade(line)
            what = line.regimen or ", ".join(line.agents) or "/".join(line.types)
            label = f"{line.label(language)}: {what}" if what else line.label(language)
            if grade:
                label += f" · G{grade}"
            if line.end_reason:
                label += f" · {end_reasons.get(line.end_reason, line.end_reason)}"
            points.append(
                timeline.Point(
                    "therapy",
                    line.started_on,
                    label,
                    line.ended_on,
                    line.ongoing,
                    row_key=f"{index:04d}",
                    row_title=line.label(language),
                    precision=line.started_on_precision,
                )
            )
        for event in self.events:
            if event.onset_on:
                points.append(
                    timeline.Point(
                        "event",
                        event.onset_on,
                        f"{event.term} {event.grade_label}",
                        precision=event.onset_on_precision,
                    )
                )
        for p in self.performance:
            label = " / ".join(
                x
                for x in (
                    f"ECOG {p.ecog}" if p.ecog is not None else "",
                    f"KPS {p.karnofsky} %" if p.karnofsky is not None else "",
                )
                if x
            )
            when = p.assessed_on_precision
            points.append(timeline.Point("performance", p.assessed_on, label, precision=when))
        for f in self.immune:
            points.append(
                timeline.Point(
                    "immune",
                    f.assessed_on,
                    f.partial("assessed_on").iso(),  # type: ignore[union-attr]
                    precision=f.assessed_on_precision,
                )
            )
        return timeline.layout(points, today)

    def site_labels(self, language: str | None) -> dict[str, str]:
        key = f"sites:{language}"
        if key not in self._labels:
            self._labels[key] = {
                c.code: c.label(language)
                for c in Code.objects.filter(system="obds:fm_lokalisation")
            }
        labels: dict[str, str] = self._labels[key]
        return labels

    def code_labels(self, language: str | None) -> dict[str, dict[str, str]]:
        if language in self._labels:
            return self._labels[language]
        systems = ["mii:therapie-typ", "mii:therapie-ende-grund", "mii:intention"]
        labels: dict[str, dict[str, str]] = {s: {} for s in systems}
        for code in Code.objects.filter(system__in=systems):
            labels[code.system][code.code] = code.label(language)
        self._labels[language] = labels
        return labels


def category_rows(version: CatalogueVersion) -> tuple[dict[str, object], ...]:
    return tuple(
        {
            "code": c.code,
            "active": c.active,
            "position": c.position,
            **{
                f: (", ".join(c.mechanisms) if f == "mechanisms" else getattr(c, f))
                for f in Category.TEXT_FIELDS
            },
        }
        for c in version.categories.order_by("position")
    )


def version_diff(old: CatalogueVersion, new: CatalogueVersion) -> tuple[rules.DiffEntry, ...]:
    return rules.diff_catalogues(category_rows(old), category_rows(new))


def category_text(category: Category, language: str | None) -> rules.CategoryText:
    return rules.CategoryText(
        code=category.code,
        position=category.position,
        group=category.group(language),
        name=category.name(language),
        description=category.description(language),
        source_section=category.source_section,
        source_quote=category.source_quote,
        mechanisms=tuple(category.mechanisms),
        active=category.active,
    )
