"""The case record as read for one page: every row in a constant number of queries, the facts
handed to rules.py, and the timeline points."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, ClassVar

import psycopg
from django.db import connections, router
from django.db.models import QuerySet
from django.db.models.query import get_related_populators
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext as _

from checklist import fragments, rules, timeline
from checklist.models import (
    Case,
    CatalogueVersion,
    Category,
    Code,
    FamilyHistory,
    GenomicResultKind,
    GenomicVariant,
    Lifestyle,
    ResultStatus,
)


def catalogue_categories(practice_id: int) -> Any:
    """The active categories of the practice's newest published catalogue version."""
    version = CatalogueVersion.objects.for_practice(practice_id).newest_published()
    if version is None:
        return Category.objects.none()
    return Category.objects.filter(version=version, active=True).order_by("position")


# The code lists whose labels the record's pages show: metastasis sites, therapy types, end
# reasons and intents.
SITE_SYSTEM = "obds:fm_lokalisation"
LABEL_SYSTEMS = ("mii:therapie-typ", "mii:therapie-ende-grund", "mii:intention")


def fetch_rows(plan: Plan, value: Any) -> list[list[Any]] | None:
    """The rows of `plan`'s SELECTs as the database returned them (one list per statement),
    read in one round trip: sent as one multi-statement query, `value` where the plan has
    `Plan.PLACEHOLDER`. None where the connection binds on the server: the statements must
    then be read one by one. Needs client-side binding, Django's default for psycopg."""
    params = [value if p == Plan.PLACEHOLDER else p for p in plan.params]
    results: list[list[Any]] = []
    with connections[plan.using].cursor() as cursor:
        if not isinstance(cursor.cursor, psycopg.ClientCursor):
            return None
        cursor.execute(plan.sql, params)
        for index in range(len(plan.compilers)):
            if index:
                cursor.nextset()
            results.append(cursor.fetchall())
    return results


@dataclass(frozen=True)
class Plan:
    """Querysets compiled to one multi-statement query, for `fetch_rows`."""

    PLACEHOLDER: ClassVar[int] = -1  # an id no row has

    using: str
    sql: str
    params: tuple[Any, ...]
    compilers: tuple[Any, ...]

    @classmethod
    def compile(cls, querysets: list[QuerySet[Any]]) -> Plan:
        using = querysets[0].db
        compilers = tuple(qs.query.get_compiler(using=using) for qs in querysets)
        statements = [compiler.as_sql() for compiler in compilers]
        return cls(
            using=using,
            sql=";\n".join(sql for sql, _params in statements),
            params=tuple(param for _sql, params in statements for param in params),
            compilers=compilers,
        )


def _instances(queryset: QuerySet[Any], compiler: Any, rows: list[Any]) -> list[Any]:
    """Model instances from a result set of `compiler` (as_sql() was called): what Django's
    ModelIterable does with the rows it fetched itself."""
    db = queryset.db
    select, klass_info = compiler.select, compiler.klass_info
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    init_list = [column[0].target.attname for column in select[start:end]]
    populators = get_related_populators(klass_info, select, db)  # type: ignore[call-arg]  # Django 5.2
    known = [
        (related, objects, related.attname)
        for related, objects in queryset._known_related_objects.items()  # type: ignore[attr-defined]
    ]
    instances = []
    for row in compiler.results_iter([rows]):
        obj = klass_info["model"].from_db(db, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        for related, objects, attname in known:
            if not related.is_cached(obj) and getattr(obj, attname) in objects:
                setattr(obj, related.name, objects[getattr(obj, attname)])
        instances.append(obj)
    return instances


def _record_querysets(case: Case) -> dict[str, QuerySet[Any]]:
    """What `CaseRecord.load` reads: one SELECT per kind of row, then the code lists."""
    return {
        "tumours": case.tumours.all(),
        "staging_records": case.staging_records.select_related("tumour"),
        "biomarkers": case.biomarkers.all(),
        "metastases": case.metastases.all(),
        "therapy_lines": case.therapy_lines.select_related("category"),
        "adverse_events": case.adverse_events.order_by("onset_on", "pk"),
        "performance": case.performance.all(),
        "immune_findings": case.immune_findings.all(),
        "prophylaxes": case.prophylaxes.all(),
        "vaccinations": case.vaccinations.all(),
        "comorbidities": case.comorbidities.all(),
        "organ_functions": case.organ_functions.all(),
        "medications": case.medications.all(),
        "lifestyle": case.lifestyle.all(),
        "family_history": case.family_history.all(),
        "genomic_variants": case.genomic_variants.all(),
        "codes": Code.objects.filter(system__in=[SITE_SYSTEM, *LABEL_SYSTEMS]),
    }


def _record_plan(using: str) -> Plan:
    """The record's querysets compiled once per connection, for a case of id
    Plan.PLACEHOLDER (a case object of its own: the plan keeps no real case alive). Kept on the
    connection object, which is the thread's own: the compilers name their connection."""
    connection = connections[using]
    plan: Plan | None = getattr(connection, "_case_record_plan", None)
    if plan is None:
        stub = Case(pk=Plan.PLACEHOLDER)
        plan = Plan.compile([qs.using(using) for qs in _record_querysets(stub).values()])
        connection._case_record_plan = plan  # type: ignore[attr-defined]
    return plan


@dataclass
class RecordRows:
    """A case's record as the database returned it, with its fingerprint: what a page body
    kept by `fragments` is keyed by. Model instances are made only when asked (`record()`):
    a page served from `fragments` needs the rows' hash, not the instances."""

    case: Case
    fingerprint: str
    rows: list[list[Any]] | None  # per reader of `_record_querysets`; None: read one by one
    plan: Plan | None  # what `rows` were read with
    _record: CaseRecord | None = None

    @classmethod
    def read(cls, case: Case) -> RecordRows:
        """The record of `case` (as the caller fetched it) in one round trip, where one
        database has all of it and the connection binds on the client (`fetch_rows`);
        otherwise read one by one, the instances made at once."""
        plan = _record_plan(router.db_for_read(Case, instance=case))
        one_database = all(
            router.db_for_read(compiler.query.model, instance=case) == plan.using
            for compiler in plan.compilers
        )
        rows = fetch_rows(plan, case.pk) if one_database else None
        state = fragments.instance_state(case)
        if rows is not None:
            return cls(case, fragments.fingerprint(state, rows), rows, plan)
        readers = _record_querysets(case)
        fetched = [list(qs) for qs in readers.values()]
        states = [[fragments.instance_state(obj) for obj in objs] for objs in fetched]
        record = CaseRecord.assemble(case, readers, fetched)
        return cls(case, fragments.fingerprint(state, states), None, None, record)

    def record(self) -> CaseRecord:
        """The record's model instances, made from the rows read (no query)."""
        if self._record is None:
            assert self.rows is not None and self.plan is not None  # read() set them
            readers = _record_querysets(self.case)
            fetched = [
                _instances(qs, compiler, rows)
                for qs, compiler, rows in zip(
                    readers.values(), self.plan.compilers, self.rows, strict=True
                )
            ]
            self._record = CaseRecord.assemble(self.case, readers, fetched)
        return self._record


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
    prophylaxes: list[Any] = field(default_factory=list)
    vaccinations: list[Any] = field(default_factory=list)
    comorbidities: list[Any] = field(default_factory=list)
    organ_functions: list[Any] = field(default_factory=list)
    medications: list[Any] = field(default_factory=list)
    lifestyle: list[Any] = field(default_factory=list)
    family_history: list[Any] = field(default_factory=list)
    genomic_variants: list[Any] = field(default_factory=list)
    codes: list[Code] = field(default_factory=list)  # the code lists of SITE_SYSTEM, LABEL_SYSTEMS
    _labels: dict[str | None, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, case: Case) -> CaseRecord:
        """The record of `case` as the caller fetched it (not fetched again): its rows, one
        SELECT per kind of row, and the code lists its labels come from, read in one round
        trip and set on the case as `prefetch_related` would."""
        return RecordRows.read(case).record()

    @classmethod
    def assemble(
        cls, case: Case, readers: dict[str, QuerySet[Any]], fetched: list[Any]
    ) -> CaseRecord:
        """The record from the instances of `readers` (`_record_querysets`), in their order."""
        *rows, code_rows = fetched
        cache = case.__dict__.setdefault("_prefetched_objects_cache", {})
        for name, instances in zip(list(readers)[:-1], rows, strict=True):  # all but the codes
            queryset = readers[name]
            queryset._result_cache = instances
            queryset._prefetch_done = True  # type: ignore[attr-defined]
            cache[name] = queryset
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
            prophylaxes=sorted(case.prophylaxes.all(), key=lambda p: (p.since, p.pk)),
            vaccinations=sorted(
                case.vaccinations.all(), key=lambda v: (v.given_on or date.min, v.pk)
            ),
            comorbidities=list(case.comorbidities.all()),
            organ_functions=sorted(case.organ_functions.all(), key=lambda o: o.measured_on),
            medications=list(case.medications.all()),
            lifestyle=sorted(case.lifestyle.all(), key=lambda r: (r.recorded_on, r.pk)),
            family_history=sorted(case.family_history.all(), key=lambda r: (r.degree, r.pk)),
            genomic_variants=sorted(
                case.genomic_variants.all(), key=lambda r: (r.reported_on or date.max, r.pk)
            ),
            codes=code_rows,
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
            immune_findings=len(self.immune)
            + len(self.immune_events)
            + len(self.prophylaxes)
            + len(self.vaccinations),
            immune_not_assessed=case.immune_not_assessed,
            no_prior_therapy=case.no_prior_therapy,
            lines=self.line_facts(),
            performance_records=len(self.performance),
            biomarkers=len(self.biomarkers),
            lifestyle=tuple(lifestyle_text(r) for r in self.lifestyle),
            family_history=tuple(family_text(r) for r in self.family_history),
            genomic_findings=tuple(genomic_text(r) for r in self.genomic_variants),
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
        for r in self.lifestyle:
            points.append(
                timeline.Point(
                    "lifestyle",
                    r.recorded_on,
                    r.get_smoking_display(),
                    precision=r.recorded_on_precision,
                )
            )
        for v in self.genomic_variants:
            if v.reported_on:
                points.append(
                    timeline.Point(
                        "genomics",
                        v.reported_on,
                        genomic_label(v),
                        precision=v.reported_on_precision,
                    )
                )
        for p in self.prophylaxes:
            # Its start: the immune lane draws points, not bars.
            points.append(timeline.Point("immune", p.since, p.agent, precision=p.since_precision))
        for v in self.vaccinations:
            if v.given_on:
                points.append(
                    timeline.Point("immune", v.given_on, v.vaccine, precision=v.given_on_precision)
                )
        for f in self.immune:
            if f.active_infection_on:
                points.append(
                    timeline.Point(
                        "immune",
                        f.active_infection_on,
                        f.active_infection_type or gettext("active infection"),
                        precision=f.active_infection_on_precision,
                    )
                )
        return timeline.layout(points, today)

    def site_labels(self, language: str | None) -> dict[str, str]:
        key = f"sites:{language}"
        if key not in self._labels:
            self._labels[key] = {
                c.code: c.label(language) for c in self.codes if c.system == SITE_SYSTEM
            }
        labels: dict[str, str] = self._labels[key]
        return labels

    def code_labels(self, language: str | None) -> dict[str, dict[str, str]]:
        if language in self._labels:
            return self._labels[language]
        labels: dict[str, dict[str, str]] = {s: {} for s in LABEL_SYSTEMS}
        for code in self.codes:
            if code.system in labels:
                labels[code.system][code.code] = code.label(language)
        self._labels[language] = labels
        return labels


# --- lifestyle, family history and genomic findings as one line of text each ----------------
# For the checklist's case summary and the timeline: the recorded values side by side, in the
# interface language; nothing is added that is not recorded.


def _number(value: Any) -> str:
    return f"{value.normalize():f}" if value is not None else ""


def lifestyle_text(row: Lifestyle) -> str:
    smoking = row.get_smoking_display()
    if row.pack_years is not None:
        smoking += ", " + _("%(n)s pack-years") % {"n": _number(row.pack_years)}
    if stopped := row.partial("quit_on"):
        smoking += ", " + _("stopped %(date)s") % {"date": stopped.iso()}
    parts = [row.partial("recorded_on").iso(), smoking]  # type: ignore[union-attr]
    if row.alcohol:
        alcohol = _("alcohol: %(use)s") % {"use": row.get_alcohol_display()}
        if row.alcohol_units_per_week is not None:
            alcohol += ", " + _("%(n)s units/week") % {"n": _number(row.alcohol_units_per_week)}
        parts.append(alcohol)
    return " · ".join(parts)


def family_text(row: FamilyHistory) -> str:
    relative = row.get_relation_display() or _("relative")
    cancer = f"{row.cancer_type} ({row.oncotree_code})" if row.oncotree_code else row.cancer_type
    parts = [f"{relative} ({row.get_degree_display()}): {cancer}"]
    if row.age_at_diagnosis is not None:
        parts.append(_("at age %(n)s") % {"n": row.age_at_diagnosis})
    if row.hereditary_syndrome:
        parts.append(row.hereditary_syndrome)
    if row.germline_testing:
        testing = _("germline testing: %(state)s") % {"state": row.get_germline_testing_display()}
        if row.germline_result:
            testing += f", {row.germline_result}"
        parts.append(testing)
    return " · ".join(parts)


def genomic_label(row: GenomicVariant) -> str:
    """The finding itself: "EGFR c.2573T>G p.(Leu858Arg)", "EML4::ALK", "TMB 12 mutations/Mb",
    "MSI-high"; the gene and kind alone while no result is recorded."""
    if row.result_kind == GenomicResultKind.TMB:
        name = _("TMB")
        if row.tmb is not None:
            return f"{name} {_number(row.tmb)} {_('mutations/Mb')}"
        return str(name)
    if row.result_kind == GenomicResultKind.MSI:
        return row.get_msi_display() if row.msi else str(_("MSI"))
    gene = f"{row.gene}::{row.partner_gene}" if row.partner_gene else row.gene
    return " ".join(x for x in (gene, row.hgvs_c, row.hgvs_p) if x)


def genomic_text(row: GenomicVariant) -> str:
    parts = [genomic_label(row)]
    if row.status != ResultStatus.RESULT:
        parts.append(row.get_status_display())
    else:
        if row.variant_type:
            parts.append(row.get_variant_type_display())
        if row.exons:
            parts.append(_("exon(s) %(exons)s") % {"exons": row.exons})
        if row.origin:
            parts.append(row.get_origin_display())
        if row.vaf is not None:
            parts.append(_("VAF %(n)s %%") % {"n": _number(row.vaf)})
    if reported := row.partial("reported_on"):
        parts.append(reported.iso())
    return " · ".join(parts)


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
