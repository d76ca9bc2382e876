"""The domain's nouns. Every clinical, catalogue and membership row carries `practice_id` and is
audited by database triggers from its first migration (see audit.py and PracticeScoped)."""

from __future__ import annotations

import functools
import uuid
from contextlib import nullcontext
from datetime import timedelta
from typing import Any, Self, TypeVar

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core import signing
from django.db import models
from django.utils import translation
from django.utils.encoding import force_str
from django.utils.functional import cached_property
from django.utils.hashable import make_hashable
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from checklist import rules


class Practice(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Practice admins always need a second factor; physicians when this is on.
    second_factor_for_physicians = models.BooleanField(
        _("second factor required for physicians"), default=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AuditCapture(pgtrigger.Trigger):
    """A statement-level trigger that hands its transition table to one shared SQL function.

    pgtrigger wraps every trigger function in a check of `pgtrigger.ignore`, which any session
    may set. The capture must not be switchable from the application's session, so the trigger
    executes our own function (created in migration 0001) instead of pgtrigger's wrapper.
    """

    level = pgtrigger.Statement
    when = pgtrigger.After
    func = "RETURN NULL;"  # pgtrigger's wrapper function; never executed, see render_execute

    def __init__(self, *, name: str, operation: pgtrigger.Operation, sql_function: str) -> None:
        referencing = {
            "audit_ins": pgtrigger.Referencing(new="new_rows"),
            "audit_upd": pgtrigger.Referencing(old="old_rows", new="new_rows"),
            "audit_del": pgtrigger.Referencing(old="old_rows"),
        }[name]
        self.sql_function = sql_function
        super().__init__(name=name, operation=operation, referencing=referencing)

    def render_execute(self, model: models.Model) -> str:
        return f"{self.sql_function}()"


AUDIT_TRIGGERS = [
    AuditCapture(name="audit_ins", operation=pgtrigger.Insert, sql_function="audit_capture_insert"),
    AuditCapture(name="audit_upd", operation=pgtrigger.Update, sql_function="audit_capture_update"),
    AuditCapture(name="audit_del", operation=pgtrigger.Delete, sql_function="audit_capture_delete"),
]


_Scoped = TypeVar("_Scoped", bound=models.Model)


class PracticeScopedQuerySet(models.QuerySet[_Scoped]):
    def for_practice(self, practice: Practice | int) -> Self:
        return self.filter(practice=practice)


@functools.cache
def _choice_labels(field: Any) -> dict[Any, Any]:
    """A field's choices as a dict, its labels still lazy (translated when shown)."""
    return dict(make_hashable(field.flatchoices))


class PracticeScoped(models.Model):
    """Base of every row that belongs to a practice: the tenant key and the audit capture."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="+")

    objects = PracticeScopedQuerySet.as_manager()

    class Meta:
        abstract = True
        triggers = AUDIT_TRIGGERS

    def _get_FIELD_display(self, field: Any) -> Any:  # noqa: N802 - Django's name
        """`get_<field>_display()` as Django answers it, from the field's choices turned into
        a dict once per field instead of on every call (Django rebuilds it each time, hashing
        every lazy label: a translation lookup per choice, a fifth of a long case page)."""
        value = make_hashable(getattr(self, field.attname))
        return force_str(_choice_labels(field).get(value, value), strings_only=True)


class Membership(PracticeScoped):
    PHYSICIAN = "physician"
    PRACTICE_ADMIN = "practice_admin"
    BOARD_COORDINATOR = "board_coordinator"
    ROLE_CHOICES = [
        (PHYSICIAN, _("Physician")),
        (PRACTICE_ADMIN, _("Practice admin")),
        (BOARD_COORDINATOR, _("Board coordinator")),
    ]
    # Who builds a meeting's agenda (order, moves, closing registration): the coordinator,
    # and an admin is one too. Who records a meeting's attendance and outcomes: a physician
    # or the coordinator (an admin edits no clinical content).
    COORDINATOR_ROLES = (BOARD_COORDINATOR, PRACTICE_ADMIN)
    RECORDER_ROLES = (PHYSICIAN, BOARD_COORDINATOR)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=20, choices=ROLE_CHOICES)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["practice", "user"], name="membership_unique_user"),
            models.CheckConstraint(
                condition=models.Q(role__in=["physician", "practice_admin", "board_coordinator"]),
                name="membership_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.practice_id} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.PRACTICE_ADMIN

    @property
    def is_physician(self) -> bool:
        return self.role == self.PHYSICIAN

    @property
    def is_coordinator(self) -> bool:
        return self.role in self.COORDINATOR_ROLES

    @property
    def is_recorder(self) -> bool:
        return self.role in self.RECORDER_ROLES


class AccountProfile(models.Model):
    """What an account carries beside Django's user: the title shown with the name.

    One row per person, not per practice: a title belongs to the person and is the same in
    every practice they work in, and `display_name(user)` needs no practice. So it carries no
    practice_id and is not PracticeScoped; a trigger of its own (migration 0004) records each
    change in the audit chain of every practice the user belongs to."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="account_profile",
        verbose_name=_("user"),
    )
    title = models.CharField(
        _("title"),
        max_length=40,
        blank=True,
        help_text=_("Shown before the name, for example “Dr.” or “Prof. Dr.”."),
    )

    class Meta:
        verbose_name = _("account profile")

    def __str__(self) -> str:
        return f"profile of user {self.user_id}"


class UserSession(AbstractBaseSession):
    """A database session that knows its user, so all of a user's sessions can be ended in one
    query (membership deactivated, password changed) without decoding every session. Django's
    documented way to extend the database session engine (`checklist.sessions.SessionStore`
    fills `user` on every save). No practice_id: a session belongs to a person, not a practice,
    and holds no clinical data; the audit trail records logins and logouts as access events."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )

    class Meta:
        verbose_name = _("session")

    @classmethod
    def get_session_store_class(cls) -> Any:
        from checklist.sessions import SessionStore

        return SessionStore


def display_name(user: Any) -> str:
    """How a person is named on every page, note and audit page: "Dr. Dana Demo" (title,
    first and last name), or the user name when no name is recorded. Reads the profile:
    a query that shows several users selects `<user>__account_profile` with them."""
    if user is None:
        return ""
    try:
        title = user.account_profile.title
    except AccountProfile.DoesNotExist:
        title = ""
    return compose_display_name(title, user.first_name, user.last_name, user.get_username())


def compose_display_name(title: str, first_name: str, last_name: str, username: str) -> str:
    """`display_name` from its parts (the audit pages read them for a whole page in one query).
    The title goes with a name only, never with a bare user name."""
    full_name = f"{first_name} {last_name}".strip()
    if not full_name:
        return username
    return f"{title.strip()} {full_name}" if title.strip() else full_name


class Sex(models.TextChoices):
    FEMALE = "female", _("female")
    MALE = "male", _("male")
    DIVERSE = "diverse", _("diverse")
    UNKNOWN = "unknown", _("unknown")


class Situation(models.TextChoices):
    FIRST_DIAGNOSIS = "first_diagnosis", _("first diagnosis")
    RECURRENCE = "recurrence", _("recurrence")
    METASTATIC_PROGRESSION = "metastatic_progression", _("metastatic progression")
    UNDER_THERAPY = "under_therapy", _("under therapy")


class ImagingMethod(models.TextChoices):
    CT = "ct", _("CT")
    MRI = "mri", _("MRI")
    PET_CT = "pet_ct", _("PET-CT")
    ULTRASOUND = "ultrasound", _("ultrasound")
    XRAY = "xray", _("X-ray")
    BONE_SCAN = "bone_scan", _("bone scintigraphy")
    CLINICAL = "clinical", _("clinical examination")
    OTHER = "other", _("other")


class MetastasisStatus(models.TextChoices):
    PRESENT = "present", _("metastases present")
    NONE_KNOWN = "none_known", _("no metastases known")
    NOT_ASSESSED = "not_assessed", _("not assessed")
    NOT_APPLICABLE = "not_applicable", _("not applicable (systemic haematological disease)")


class CaseQuerySet(PracticeScopedQuerySet):
    def for_list(self) -> CaseQuerySet:
        return self.select_related("updated_by__account_profile").prefetch_related(
            models.Prefetch("tumours", queryset=Tumour.objects.order_by("pk"))
        )

    def with_completeness(self) -> CaseQuerySet:
        """Annotates each factor group's "something recorded, or explicitly stated" flag and
        `complete` (all five orientation factors documented), for filtering in SQL."""

        def has(model: Any) -> models.Exists:
            return models.Exists(model.objects.filter(case=models.OuterRef("pk")))

        return self.annotate(
            has_tumour=has(Tumour) | models.Q(unknown_primary=True),
            has_stage=has(StagingRecord),
            has_metastasis_status=~models.Q(metastasis_status=""),
            # Findings recorded, or the explicit statement that they were not assessed.
            has_immune=has(ImmuneFinding)
            | has(Prophylaxis)
            | has(Vaccination)
            | models.Exists(
                AdverseEvent.objects.filter(case=models.OuterRef("pk"), immune_related=True)
            )
            | models.Q(immune_not_assessed=True),
            has_prior=has(TherapyLine) | models.Q(no_prior_therapy=True),
        ).annotate(
            complete=models.Q(has_tumour=True)
            & models.Q(has_stage=True)
            & models.Q(has_metastasis_status=True)
            & models.Q(has_immune=True)
            & models.Q(has_prior=True)
        )


class Case(PracticeScoped):
    """The aggregate. `version` is bumped by every change to the case or any of its rows; it is
    the optimistic lock (services compare it) and the guard for rules that span rows."""

    label = models.CharField(
        _("pseudonymous label"),
        max_length=64,
        help_text=_("A pseudonym unique in the practice; never the patient's name."),
    )
    year_of_birth = models.PositiveSmallIntegerField(_("year of birth"))
    sex = models.CharField(_("sex"), max_length=10, choices=Sex.choices)
    situation = models.CharField(_("tumour situation"), max_length=30, choices=Situation.choices)
    last_restaging_on = models.DateField(_("last restaging on"), null=True, blank=True)
    last_restaging_method = models.CharField(
        _("last restaging method"), max_length=20, choices=ImagingMethod.choices, blank=True
    )
    unknown_primary = models.BooleanField(_("cancer of unknown primary"), default=False)
    metastasis_status = models.CharField(
        _("metastasis status"), max_length=20, choices=MetastasisStatus.choices, blank=True
    )
    metastasis_assessed_on = models.DateField(_("assessed on"), null=True, blank=True)
    metastasis_assessment_method = models.CharField(
        _("assessed by"), max_length=20, choices=ImagingMethod.choices, blank=True
    )
    no_prior_therapy = models.BooleanField(_("no prior tumour-specific therapy"), default=False)
    immune_not_assessed = models.BooleanField(
        _("immune-relevant findings not assessed"), default=False
    )
    prior_therapy_stated_on = models.DateField(null=True, blank=True)
    deceased_on = models.DateField(_("died on"), null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )

    objects = CaseQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    # Field values that make a minimal valid case, for seeding and tests.
    MINIMAL = {"year_of_birth": 1960, "sex": "female", "situation": "first_diagnosis"}

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["practice", "label"], name="case_label_unique"),
        ]
        indexes = [models.Index(fields=["practice", "label"], name="case_practice_label")]

    def __str__(self) -> str:
        return self.label

    @cached_property
    def is_haematological(self) -> bool:
        """Any primary in OncoTree's lymphoid or myeloid tissue (RECIST is not offered)."""
        return any(t.is_haematological for t in self.tumours.all())


class DatePrecision(models.TextChoices):
    DAY = "day", _("day")
    MONTH = "month", _("month")
    YEAR = "year", _("year")


def date_precision() -> models.CharField[str, str]:
    """The sibling `<date field>_precision` of a clinical date known to the day, month or
    year. The date column holds the first day of that month or year; renderings read both."""
    return models.CharField(
        max_length=5, choices=DatePrecision.choices, default=DatePrecision.DAY, editable=False
    )


def date_precision_checks(model: str, *names: str) -> list[models.BaseConstraint]:
    """The database refuses a precision it does not know and a month or year date stored on
    any day but the first of its month or year (which would read as a day it never was)."""
    checks: list[models.BaseConstraint] = []
    for name in names:
        precision = f"{name}_precision"
        year_start = {f"{name}__day": 1, f"{name}__month": 1}
        checks.append(
            models.CheckConstraint(
                condition=models.Q(**{precision: DatePrecision.DAY})
                | models.Q(**{precision: DatePrecision.MONTH, f"{name}__day": 1})
                | models.Q(**{precision: DatePrecision.YEAR, **year_start})
                | models.Q(**{f"{name}__isnull": True, f"{precision}__in": DatePrecision.values}),
                name=f"{model}_{name}_precision",
            )
        )
    return checks


def precise_date_fields(model: type[models.Model]) -> tuple[str, ...]:
    """The date fields of a model that carry a precision sibling."""
    names = {f.name for f in model._meta.get_fields()}
    return tuple(
        f.name
        for f in model._meta.get_fields()
        if isinstance(f, models.DateField)
        and not isinstance(f, models.DateTimeField)
        and f"{f.name}_precision" in names
    )


def partial_date(obj: models.Model, name: str) -> rules.PartialDate | None:
    """A recorded date with its precision (day when the model keeps none)."""
    value = getattr(obj, name)
    if value is None:
        return None
    return rules.PartialDate(value, getattr(obj, f"{name}_precision", DatePrecision.DAY))


class CaseRow(PracticeScoped):
    """A row of a case's aggregate: carries its own practice_id and is audited."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+")

    class Meta(PracticeScoped.Meta):
        abstract = True

    def partial(self, name: str) -> rules.PartialDate | None:
        return partial_date(self, name)


class Laterality(models.TextChoices):
    LEFT = "left", _("left")
    RIGHT = "right", _("right")
    BILATERAL = "bilateral", _("bilateral")
    MIDLINE = "midline", _("midline")
    NOT_APPLICABLE = "not_applicable", _("not applicable")
    UNKNOWN = "unknown", _("unknown")


class DiagnosisBasis(models.TextChoices):
    HISTOLOGY = "histology", _("histology of the primary")
    HISTOLOGY_METASTASIS = "histology_metastasis", _("histology of a metastasis")
    CYTOLOGY = "cytology", _("cytology")
    FLOW_CYTOMETRY = "flow_cytometry", _("flow cytometry")
    TUMOUR_MARKER = "tumour_marker", _("specific tumour markers")
    CLINICAL_DIAGNOSTICS = "clinical_diagnostics", _("clinical diagnostics (imaging)")
    CLINICAL = "clinical", _("clinical only")
    UNKNOWN = "unknown", _("unknown")


class Grade(models.TextChoices):
    G1 = "G1", "G1"
    G2 = "G2", "G2"
    G3 = "G3", "G3"
    G4 = "G4", "G4"
    GX = "GX", "GX"
    LOW = "L", _("low grade")
    HIGH = "H", _("high grade")
    NOT_APPLICABLE = "NA", _("not applicable")


class Tumour(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="tumours")
    oncotree_code = models.CharField(_("tumour type (OncoTree code)"), max_length=40)
    oncotree_name = models.CharField(max_length=300)
    oncotree_release = models.CharField(max_length=60)
    oncotree_tissue = models.CharField(max_length=100, blank=True)
    oncotree_main_type = models.CharField(max_length=200, blank=True)
    icd10_text = models.CharField(_("ICD-10 (optional)"), max_length=100, blank=True)
    laterality = models.CharField(_("laterality"), max_length=20, choices=Laterality.choices)
    diagnosed_on = models.DateField(_("date of diagnosis"), null=True, blank=True)
    diagnosed_on_precision = date_precision()
    diagnosis_basis = models.CharField(
        _("basis of diagnosis"), max_length=30, choices=DiagnosisBasis.choices, blank=True
    )
    histology = models.CharField(_("histology"), max_length=300, blank=True)
    grade = models.CharField(_("grade"), max_length=2, choices=Grade.choices, blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("tumour", "diagnosed_on")

    def __str__(self) -> str:
        return f"{self.oncotree_name} ({self.oncotree_code})"

    @property
    def is_haematological(self) -> bool:
        return self.oncotree_tissue in HAEMATOLOGICAL_TISSUES


HAEMATOLOGICAL_TISSUES = {"Lymphoid", "Myeloid"}


class StagingKind(models.TextChoices):
    CLINICAL = "clinical", _("clinical")
    PATHOLOGICAL = "pathological", _("pathological")
    POST_THERAPY = "post_therapy", _("post-therapy")
    RECURRENCE = "recurrence", _("recurrence")


class StagingSystem(models.TextChoices):
    UICC_TNM = "uicc_tnm", _("UICC TNM")
    BINET = "binet", _("Binet")
    RAI = "rai", _("Rai")
    ANN_ARBOR = "ann_arbor", _("Ann Arbor / Lugano")
    ISS = "iss", _("ISS / R-ISS")
    FIGO = "figo", _("FIGO")
    OTHER = "other", _("other")
    NOT_APPLICABLE = "not_applicable", _("not applicable")


# The project's own M codes (TNM 9, lung), system "project:tnm_m" in fixtures/codelists.json:
# in neither the oBDS list nor the MII TNM versions, so never exported under those systems.
PROJECT_TNM_M_CODES = frozenset({"1c1", "1c2"})


class TnmPrefix(models.TextChoices):
    C = "c", "c"
    P = "p", "p"
    U = "u", "u"


class StagingRecord(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="staging_records")
    tumour = models.ForeignKey(
        Tumour,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("primary tumour"),
    )
    staged_on = models.DateField(_("date"))
    staged_on_precision = date_precision()
    kind = models.CharField(_("kind"), max_length=20, choices=StagingKind.choices)
    system = models.CharField(_("system"), max_length=20, choices=StagingSystem.choices)
    tnm_edition = models.CharField(
        _("TNM edition"), max_length=2, choices=[("7", "7"), ("8", "8"), ("9", "9")], blank=True
    )
    y_symbol = models.BooleanField(_("y (after therapy)"), default=False)
    r_symbol = models.BooleanField(_("r (recurrence)"), default=False)
    a_symbol = models.BooleanField(_("a (at autopsy)"), default=False)
    m_symbol = models.CharField(_("m (multiple primaries)"), max_length=5, blank=True)
    t_prefix = models.CharField(_("T prefix"), max_length=1, choices=TnmPrefix.choices, blank=True)
    t_category = models.CharField(_("T"), max_length=20, blank=True)
    n_prefix = models.CharField(_("N prefix"), max_length=1, choices=TnmPrefix.choices, blank=True)
    n_category = models.CharField(_("N"), max_length=20, blank=True)
    m_prefix = models.CharField(_("M prefix"), max_length=1, choices=TnmPrefix.choices, blank=True)
    m_category = models.CharField(_("M"), max_length=20, blank=True)
    l_category = models.CharField(_("L"), max_length=5, blank=True)
    v_category = models.CharField(_("V"), max_length=5, blank=True)
    pn_category = models.CharField(_("Pn"), max_length=5, blank=True)
    r_classification = models.CharField(
        _("R"),
        max_length=2,
        choices=[
            ("R0", _("R0: no residual tumour")),
            ("R1", _("R1: microscopic residual tumour")),
            ("R2", _("R2: macroscopic residual tumour")),
            ("RX", _("RX: residual tumour cannot be assessed")),
        ],
        blank=True,
    )
    uicc_stage = models.CharField(_("UICC stage (chosen)"), max_length=10, blank=True)
    other_system_name = models.CharField(_("other system"), max_length=100, blank=True)
    stage_text = models.CharField(_("stage"), max_length=60, blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("stagingrecord", "staged_on")

    def __str__(self) -> str:
        return f"{self.staged_on} {self.get_system_display()}"

    @property
    def m_is_project_code(self) -> bool:
        return self.m_category in PROJECT_TNM_M_CODES

    @property
    def tnm_text(self) -> str:
        symbols = "".join(s for s, on in (("y", self.y_symbol), ("r", self.r_symbol)) if on)
        symbols += "a" if self.a_symbol else ""
        parts = []
        for prefix, letter, category in (
            (self.t_prefix, "T", self.t_category),
            (self.n_prefix, "N", self.n_category),
            (self.m_prefix, "M", self.m_category),
        ):
            if category:
                parts.append(f"{symbols}{prefix}{letter}{category}")
        if self.m_symbol:
            parts[:1] = [f"{parts[0]}({self.m_symbol})"] if parts else []
        parts += [c for c in (self.l_category, self.v_category, self.pn_category) if c]
        if self.r_classification:
            parts.append(self.r_classification)
        return " ".join(parts)


class BiomarkerKind(models.TextChoices):
    """What the marker describes: the tumour's own (somatic) change, a marker circulating in
    the blood, or the patient's germline. Where it was measured is the specimen type."""

    SOMATIC = "somatic", _("tumour (somatic)")
    CIRCULATING = "circulating", _("circulating marker")
    GERMLINE = "germline", _("germline")


class SpecimenType(models.TextChoices):
    TISSUE = "tissue", _("tissue")
    SERUM = "serum", _("serum / plasma")
    PERIPHERAL_BLOOD = "peripheral_blood", _("peripheral blood")
    BONE_MARROW = "bone_marrow", _("bone marrow")
    OTHER = "other", _("other")


class AssayMethod(models.TextChoices):
    IHC = "ihc", _("immunohistochemistry")
    FLOW_CYTOMETRY = "flow_cytometry", _("flow cytometry")
    FISH = "fish", _("FISH")
    SEQUENCING = "sequencing", _("sequencing")
    PCR = "pcr", _("PCR")
    IMMUNOASSAY = "immunoassay", _("immunoassay")
    OTHER = "other", _("other")


class ResultStatus(models.TextChoices):
    RESULT = "result", _("result")
    PENDING = "pending", _("pending")
    FAILED = "failed", _("failed")
    NOT_TESTED = "not_tested", _("not tested")


COMMON_BIOMARKERS = [
    "ER",
    "PR",
    "HER2",
    "Ki-67",
    "PD-L1",
    "MSI/MMR",
    "KRAS",
    "EGFR",
    "ALK",
    "ROS1",
    "BRAF",
    "PIK3CA",
    "BRCA1",
    "BRCA2",
    "TP53",
    "IGHV",
    "PSA",
    "CEA",
    "CA 15-3",
    "CA 19-9",
    "β2-microglobulin",
]


class Biomarker(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="biomarkers")
    name = models.CharField(_("marker"), max_length=60)
    kind = models.CharField(_("kind"), max_length=12, choices=BiomarkerKind.choices)
    specimen_type = models.CharField(
        _("specimen type"), max_length=20, choices=SpecimenType.choices, blank=True
    )
    specimen = models.CharField(_("specimen"), max_length=200, blank=True)
    sampled_on = models.DateField(_("date"), null=True, blank=True)
    sampled_on_precision = date_precision()
    method = models.CharField(_("method"), max_length=20, choices=AssayMethod.choices, blank=True)
    assay = models.CharField(_("assay"), max_length=200, blank=True)
    scoring = models.CharField(
        _("score type"), max_length=30, blank=True, help_text=_("e.g. TPS or CPS for PD-L1")
    )
    value = models.DecimalField(_("value"), max_digits=12, decimal_places=4, null=True, blank=True)
    unit = models.CharField(_("unit"), max_length=30, blank=True)
    categorical_result = models.CharField(
        _("categorical result"), max_length=100, blank=True, help_text=_("e.g. 3+, mutated")
    )
    status = models.CharField(_("status"), max_length=12, choices=ResultStatus.choices)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("biomarker", "sampled_on")

    def __str__(self) -> str:
        return self.name


class MetastasisTiming(models.TextChoices):
    SYNCHRONOUS = "synchronous", _("synchronous")
    METACHRONOUS = "metachronous", _("metachronous")


class EstablishedBy(models.TextChoices):
    """How a metastasis was detected. "Imaging, method not recorded" is what rows recorded
    before the method was asked for say (they said "imaging"); it is not offered for new rows."""

    CT = "ct", _("CT")
    MRI = "mri", _("MRI")
    PET_CT = "pet_ct", _("PET-CT")
    BONE_SCAN = "bone_scan", _("bone scintigraphy")
    HISTOLOGY = "histology", _("biopsy / histology")
    CYTOLOGY = "cytology", _("cytology")
    CLINICAL = "clinical", _("clinical")
    OTHER = "other", _("other")
    IMAGING_UNSPECIFIED = "imaging_unspecified", _("imaging, method not recorded")


class MetastasisSide(models.TextChoices):
    LEFT = "left", _("left")
    RIGHT = "right", _("right")
    BILATERAL = "bilateral", _("bilateral")
    MIDLINE = "midline", _("midline")
    NOT_APPLICABLE = "not_applicable", _("not applicable")


class Metastasis(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="metastases")
    site = models.CharField(_("site"), max_length=3)
    side = models.CharField(_("side"), max_length=15, choices=MetastasisSide.choices, blank=True)
    level = models.CharField(
        _("level or segment"), max_length=60, blank=True, help_text=_("e.g. T8, segment VII")
    )
    largest_size_mm = models.DecimalField(
        _("largest size (mm)"), max_digits=5, decimal_places=1, null=True, blank=True
    )
    lesions = models.PositiveIntegerField(_("number of lesions"), null=True, blank=True)
    detected_on = models.DateField(_("detected on"))
    detected_on_precision = date_precision()
    timing = models.CharField(_("timing"), max_length=15, choices=MetastasisTiming.choices)
    established_by = models.CharField(
        _("detection method"), max_length=20, choices=EstablishedBy.choices, blank=True
    )

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("metastasis", "detected_on")

    def __str__(self) -> str:
        return self.site


# --- case record II: therapy episodes, tolerability, immune status, individual situation -----


class EpisodeKind(models.TextChoices):
    """What a therapy episode is. Only a systemic line carries a line number."""

    SYSTEMIC = "systemic", _("systemic therapy line")
    SURGERY = "surgery", _("surgery")
    RADIOTHERAPY = "radiotherapy", _("radiotherapy")
    RADIOSURGERY = "radiosurgery", _("stereotactic radiosurgery")
    INTERVENTION = "intervention", _("interventional procedure")
    WATCH_AND_WAIT = "watch_and_wait", _("watch and wait / active surveillance")


class LinePosition(models.TextChoices):
    """Where an episode stands in the course of the disease. The one-letter codes are those of
    the MII code system "therapie-stellung" (position relative to surgery); the others are the
    project's own, for what that list has no code for (haematological and advanced-disease
    lines)."""

    NEOADJUVANT = "N", _("neoadjuvant")
    ADJUVANT = "A", _("adjuvant")
    ADDITIVE = "Z", _("additive")
    INTRAOPERATIVE = "I", _("intraoperative")
    NO_SURGERY = "O", _("without relation to surgery")
    DEFINITIVE = "definitive", _("definitive (curative without surgery)")
    INDUCTION = "induction", _("induction")
    CONSOLIDATION = "consolidation", _("consolidation")
    MAINTENANCE = "maintenance", _("maintenance")
    CONDITIONING = "conditioning", _("conditioning before stem-cell transplant")
    FIRST_LINE_ADVANCED = "first_advanced", _("first line for advanced disease")
    LATER_LINE_ADVANCED = "later_advanced", _("later line for advanced disease")
    SALVAGE = "salvage", _("salvage (relapsed or refractory disease)")
    OTHER = "S", _("other")


class Response(models.TextChoices):
    CR = "CR", _("complete response")
    PR = "PR", _("partial response")
    SD = "SD", _("stable disease")
    PD = "PD", _("progressive disease")
    MIXED = "mixed", _("mixed response")
    NOT_EVALUABLE = "NE", _("not evaluable")
    UNKNOWN = "unknown", _("unknown")


class ResponseCriteria(models.TextChoices):
    RECIST = "recist_1_1", "RECIST 1.1"
    IRECIST = "irecist", "iRECIST"
    RANO = "rano", "RANO"
    LUGANO = "lugano", "Lugano"
    IWCLL = "iwcll", "iwCLL"
    IMWG = "imwg", "IMWG"
    PCWG3 = "pcwg3", "PCWG3"
    CLINICAL = "clinical", _("clinical")
    NOT_EVALUABLE = "not_evaluable", _("not evaluable (e.g. adjuvant)")


class MrdStatus(models.TextChoices):
    NEGATIVE = "negative", _("MRD negative")
    POSITIVE = "positive", _("MRD positive")
    NOT_DONE = "not_done", _("MRD not done")


class MrdSpecimen(models.TextChoices):
    PERIPHERAL_BLOOD = "peripheral_blood", _("peripheral blood")
    BONE_MARROW = "bone_marrow", _("bone marrow")


# The sensitivity of an MRD assay as the exponent of 10: -4 reads "10⁻⁴".
MRD_SENSITIVITIES = [
    (e, "10" + str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")))
    for e in range(-2, -8, -1)
]

# RECIST-family criteria describe solid tumours; they are not offered for haematological cases.
SOLID_TUMOUR_CRITERIA = {ResponseCriteria.RECIST, ResponseCriteria.IRECIST}

# End reasons (MII "therapie-ende-grund") that say the episode ended as planned.
REGULAR_END_REASONS = {"E", "R", "W"}


class TherapyLine(CaseRow):
    """A therapy episode: a systemic line (numbered by the physician) or a local therapy or
    watch-and-wait period (never numbered)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="therapy_lines")
    kind = models.CharField(
        _("kind of episode"),
        max_length=15,
        choices=EpisodeKind.choices,
        default=EpisodeKind.SYSTEMIC,
    )
    number = models.PositiveSmallIntegerField(_("line number"), null=True, blank=True)
    types = ArrayField(
        models.CharField(max_length=4), verbose_name=_("therapy types"), default=list, blank=True
    )
    regimen = models.CharField(_("regimen"), max_length=300, blank=True)
    agents = ArrayField(
        models.CharField(max_length=200), verbose_name=_("agents"), default=list, blank=True
    )
    intent = models.CharField(_("intent"), max_length=2, blank=True)
    position = models.CharField(
        _("position in the course of therapy"),
        max_length=15,
        choices=LinePosition.choices,
        blank=True,
    )
    started_on = models.DateField(_("start"))
    started_on_precision = date_precision()
    ended_on = models.DateField(_("end"), null=True, blank=True)
    ended_on_precision = date_precision()
    ongoing = models.BooleanField(_("ongoing"), default=False)
    cycles = models.PositiveSmallIntegerField(_("cycles"), null=True, blank=True)
    dose_reductions = models.PositiveSmallIntegerField(_("dose reductions"), null=True, blank=True)
    response = models.CharField(
        _("best response"), max_length=10, choices=Response.choices, blank=True
    )
    response_criteria = models.CharField(
        _("response criteria"), max_length=15, choices=ResponseCriteria.choices, blank=True
    )
    mrd = models.CharField(_("MRD"), max_length=10, choices=MrdStatus.choices, blank=True)
    mrd_sensitivity = models.SmallIntegerField(
        _("MRD sensitivity"), choices=MRD_SENSITIVITIES, null=True, blank=True
    )
    mrd_specimen = models.CharField(
        _("MRD specimen"), max_length=20, choices=MrdSpecimen.choices, blank=True
    )
    end_reason = models.CharField(_("end reason"), max_length=2, blank=True)
    category = models.ForeignKey(
        "Category",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("linked catalogue category"),
    )

    class Meta(CaseRow.Meta):
        verbose_name = _("therapy episode")
        constraints = date_precision_checks("therapyline", "started_on", "ended_on") + [
            # A systemic line has its number; no other episode has one ("line 0").
            models.CheckConstraint(
                condition=models.Q(kind=EpisodeKind.SYSTEMIC, number__isnull=False)
                | (~models.Q(kind=EpisodeKind.SYSTEMIC) & models.Q(number__isnull=True)),
                name="therapyline_number_only_systemic",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=EpisodeKind.values), name="therapyline_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.label()

    @property
    def is_systemic(self) -> bool:
        return self.kind == EpisodeKind.SYSTEMIC

    def label(self, language: str | None = None) -> str:
        """How the episode is named everywhere: "Line 1 · maintenance" for a systemic line,
        "Radiotherapy · 2021-03" for any other episode (its kind and start at precision)."""
        with translation.override(language) if language else nullcontext():
            if self.is_systemic:
                text = str(_("Line %(n)s")) % {"n": self.number}
                if self.position:
                    text += f" · {self.get_position_display()}"
                return text
            start = self.partial("started_on")
            kind = capfirst(self.get_kind_display())
            return f"{kind} · {start.iso()}" if start else str(kind)

    @property
    def recorded_events(self) -> list[AdverseEvent]:
        """The episode's adverse events: set by `CaseRecord.load` (no query), else read."""
        cached = self.__dict__.get("_recorded_events")
        if cached is None:
            cached = list(self.events.order_by("onset_on", "pk"))
            self.__dict__["_recorded_events"] = cached
        return cached

    def worst_grade(self) -> tuple[int | None, int]:
        """The highest known CTCAE grade of the episode's events and how many events have an
        unknown grade (not counted, and said so)."""
        grades = [int(e.grade) for e in self.recorded_events if e.grade in AE_NUMERIC_GRADES]
        unknown = sum(1 for e in self.recorded_events if e.grade == AeGrade.UNKNOWN)
        return (max(grades) if grades else None, unknown)


class AeGrade(models.TextChoices):
    """CTCAE grade as the MII code system "nebenwirkung-ctcae-grad" codes it (U: unknown)."""

    G1 = "1", "G1"
    G2 = "2", "G2"
    G3 = "3", "G3"
    G4 = "4", "G4"
    G5 = "5", _("G5 (death)")
    UNKNOWN = "U", _("grade unknown")


AE_NUMERIC_GRADES = {"1", "2", "3", "4", "5"}


class CtcaeVersion(models.TextChoices):
    V4_03 = "4.03", "CTCAE v4.03"
    V5 = "5.0", "CTCAE v5.0"
    V6 = "6.0", "CTCAE v6.0"
    NOT_RECORDED = "not_recorded", _("CTCAE version not recorded")


class AeCourse(models.TextChoices):
    RESOLVED = "resolved", _("resolved")
    IMPROVED = "improved", _("improved to a lower grade")
    PERSISTING = "persisting", _("persisting")
    SEQUELAE = "sequelae", _("resolved with sequelae")
    NOT_RECORDED = "not_recorded", _("course not recorded")


class YesNoRecorded(models.TextChoices):
    YES = "yes", _("yes")
    NO = "no", _("no")


class AdverseEvent(CaseRow):
    """An adverse event of the case: one model for every event, immune-related or not (the
    flag says which), optionally attributed to a therapy episode or an agent."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="adverse_events")
    line = models.ForeignKey(
        TherapyLine,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("causative therapy episode"),
    )
    term = models.CharField(_("term"), max_length=200)
    grade = models.CharField(_("grade"), max_length=1, choices=AeGrade.choices)
    ctcae_version = models.CharField(
        _("CTCAE version"), max_length=12, choices=CtcaeVersion.choices
    )
    onset_on = models.DateField(_("onset"), null=True, blank=True)
    onset_on_precision = date_precision()
    attributed_agent = models.CharField(_("attributed agent"), max_length=200, blank=True)
    immune_related = models.BooleanField(_("immune-related"), default=False)
    steroids = models.CharField(
        _("systemic steroids given"), max_length=3, choices=YesNoRecorded.choices, blank=True
    )
    steroid_dose = models.CharField(
        _("steroid dose"), max_length=100, blank=True, help_text=_("e.g. prednisolone 1 mg/kg")
    )
    steroid_started_on = models.DateField(_("steroids started"), null=True, blank=True)
    steroid_started_on_precision = date_precision()
    other_immunosuppressants = models.CharField(
        _("other immunosuppressants"), max_length=200, blank=True, help_text=_("e.g. infliximab")
    )
    treatment = models.CharField(_("other treatment"), max_length=300, blank=True)
    course = models.CharField(
        _("course"), max_length=15, choices=AeCourse.choices, default=AeCourse.NOT_RECORDED
    )
    improved_to_grade = models.PositiveSmallIntegerField(
        _("improved to grade"), choices=[(g, f"G{g}") for g in range(1, 5)], null=True, blank=True
    )
    led_to_stop = models.BooleanField(_("led to stopping the therapy"), default=False)
    dose_reduced = models.BooleanField(_("dose reduced"), default=False)
    rechallenged = models.CharField(
        _("rechallenged"), max_length=3, choices=YesNoRecorded.choices, blank=True
    )

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("adverseevent", "onset_on", "steroid_started_on") + [
            models.CheckConstraint(
                condition=models.Q(grade__in=AeGrade.values), name="ae_grade_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(ctcae_version__in=CtcaeVersion.values),
                name="ae_ctcae_version_valid",
            ),
            # "Improved to grade n" needs its n; no other course has one.
            models.CheckConstraint(
                condition=models.Q(course=AeCourse.IMPROVED, improved_to_grade__isnull=False)
                | (~models.Q(course=AeCourse.IMPROVED) & models.Q(improved_to_grade__isnull=True)),
                name="ae_improved_to_grade",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.term} {self.grade_label}"

    @property
    def grade_label(self) -> str:
        """ "G3"; an unknown grade says so."""
        return f"G{self.grade}" if self.grade in AE_NUMERIC_GRADES else str(_("grade unknown"))

    @property
    def course_label(self) -> str:
        if self.course == AeCourse.IMPROVED and self.improved_to_grade:
            return str(_("improved to G%(n)s")) % {"n": self.improved_to_grade}
        return str(self.get_course_display())


class PerformanceStatus(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="performance")
    assessed_on = models.DateField(_("assessed on"))
    assessed_on_precision = date_precision()
    ecog = models.PositiveSmallIntegerField(
        _("ECOG"), choices=[(g, str(g)) for g in range(0, 5)], null=True, blank=True
    )
    karnofsky = models.PositiveSmallIntegerField(
        _("Karnofsky (%)"),
        choices=[(k, f"{k} %") for k in range(100, -1, -10)],
        null=True,
        blank=True,
    )

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("performancestatus", "assessed_on")

    def __str__(self) -> str:
        return str(self.assessed_on)


class TestResult(models.TextChoices):
    POSITIVE = "positive", _("positive")
    NEGATIVE = "negative", _("negative")
    NOT_TESTED = "not_tested", _("not tested")


class YesNo(models.TextChoices):
    YES = "yes", _("yes")
    NO = "no", _("no")
    NOT_ASSESSED = "not_assessed", _("not assessed")


class YesNoUnknown(models.TextChoices):
    YES = "yes", _("yes")
    NO = "no", _("no")
    UNKNOWN = "unknown", _("unknown")


class CountUnit(models.TextChoices):
    """The units laboratories report counts and haemoglobin in; the finding stores the value
    converted (10⁹/L, g/dL) and keeps the laboratory's value and unit beside it."""

    BILLION_PER_LITRE = "1e9/L", "10⁹/L"
    GPT_PER_LITRE = "Gpt/L", "Gpt/L"
    PER_MICROLITRE = "/uL", "/µL"
    PERCENT = "%", _("% of leukocytes")
    G_PER_DL = "g/dL", "g/dL"
    G_PER_L = "g/L", "g/L"
    MMOL_PER_L = "mmol/L", "mmol/L"


class BoundQualifier(models.TextChoices):
    BELOW = "<", _("below")
    ABOVE = ">", _("above")


def lab_value(label: Any) -> models.DecimalField[Any, Any]:
    """The value as the laboratory reported it, before conversion."""
    return models.DecimalField(label, max_digits=12, decimal_places=4, null=True, blank=True)


def lab_unit(label: Any) -> models.CharField[str, str]:
    return models.CharField(label, max_length=10, choices=CountUnit.choices, blank=True)


class ImmuneFinding(CaseRow):
    """One dated set of immune-relevant findings. Every item is optional; "not tested" is
    recorded explicitly and differs from an empty field. No score, ratio or verdict."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="immune_findings")
    assessed_on = models.DateField(_("date"))
    assessed_on_precision = date_precision()
    leukocytes = models.DecimalField(
        _("leukocytes (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    leukocytes_lab_value = lab_value(_("leukocytes as reported"))
    leukocytes_lab_unit = lab_unit(_("leukocytes: unit as reported"))
    neutrophils = models.DecimalField(
        _("neutrophils (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    neutrophils_lab_value = lab_value(_("neutrophils as reported"))
    neutrophils_lab_unit = lab_unit(_("neutrophils: unit as reported"))
    neutrophils_not_tested = models.BooleanField(_("neutrophils not tested"), default=False)
    lymphocytes = models.DecimalField(
        _("lymphocytes (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    lymphocytes_lab_value = lab_value(_("lymphocytes as reported"))
    lymphocytes_lab_unit = lab_unit(_("lymphocytes: unit as reported"))
    lymphocytes_not_tested = models.BooleanField(_("lymphocytes not tested"), default=False)
    platelets = models.DecimalField(
        _("platelets (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    platelets_lab_value = lab_value(_("platelets as reported"))
    platelets_lab_unit = lab_unit(_("platelets: unit as reported"))
    haemoglobin = models.DecimalField(
        _("haemoglobin (g/dL)"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    haemoglobin_lab_value = lab_value(_("haemoglobin as reported"))
    haemoglobin_lab_unit = lab_unit(_("haemoglobin: unit as reported"))
    count_context = models.CharField(
        _("context of the counts"),
        max_length=200,
        blank=True,
        help_text=_("e.g. under G-CSF, under steroids"),
    )
    cd4 = models.PositiveIntegerField(_("CD4 (/µL)"), null=True, blank=True)
    cd4_not_tested = models.BooleanField(_("CD4 not tested"), default=False)
    igg = models.DecimalField(_("IgG (g/L)"), max_digits=6, decimal_places=2, null=True, blank=True)
    igg_not_tested = models.BooleanField(_("IgG not tested"), default=False)
    iga = models.DecimalField(_("IgA (g/L)"), max_digits=6, decimal_places=2, null=True, blank=True)
    igm = models.DecimalField(_("IgM (g/L)"), max_digits=6, decimal_places=2, null=True, blank=True)
    steroid_mg_per_day = models.DecimalField(
        _("systemic steroid, prednisolone equivalent (mg/day)"),
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
    )
    steroid_since = models.DateField(_("steroid since"), null=True, blank=True)
    steroid_since_precision = date_precision()
    hiv = models.CharField(_("HIV"), max_length=12, choices=TestResult.choices, blank=True)
    hbsag = models.CharField(_("HBsAg"), max_length=12, choices=TestResult.choices, blank=True)
    anti_hbc = models.CharField(
        _("anti-HBc"), max_length=12, choices=TestResult.choices, blank=True
    )
    anti_hbs = models.CharField(
        _("anti-HBs"), max_length=12, choices=TestResult.choices, blank=True
    )
    hbv_dna_qualifier = models.CharField(
        _("HBV DNA below or above"), max_length=1, choices=BoundQualifier.choices, blank=True
    )
    hbv_dna = models.DecimalField(
        _("HBV DNA (IU/mL)"), max_digits=14, decimal_places=1, null=True, blank=True
    )
    hcv = models.CharField(_("HCV"), max_length=12, choices=TestResult.choices, blank=True)
    active_infection = models.CharField(
        _("active infection"), max_length=10, choices=YesNoUnknown.choices, blank=True
    )
    active_infection_type = models.CharField(_("type of infection"), max_length=200, blank=True)
    active_infection_on = models.DateField(_("infection since"), null=True, blank=True)
    active_infection_on_precision = date_precision()
    transplant_gvhd = models.CharField(_("transplant / GvHD"), max_length=200, blank=True)
    asplenia = models.CharField(_("asplenia"), max_length=12, choices=YesNo.choices, blank=True)
    autoimmune_disease = models.CharField(_("autoimmune disease"), max_length=200, blank=True)
    infections_12m = models.PositiveSmallIntegerField(
        _("infections in the last 12 months"), null=True, blank=True
    )
    infections_hospitalised = models.PositiveSmallIntegerField(
        _("of which hospitalised"), null=True, blank=True
    )
    comment = models.TextField(_("physician's comment"), blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks(
            "immunefinding", "assessed_on", "steroid_since", "active_infection_on"
        )

    def __str__(self) -> str:
        return str(self.assessed_on)


class ProphylaxisKind(models.TextChoices):
    ANTIVIRAL = "antiviral", _("antiviral")
    ANTIBACTERIAL = "antibacterial", _("antibacterial")
    ANTIFUNGAL = "antifungal", _("antifungal")
    OTHER = "other", _("other antimicrobial")


class Prophylaxis(CaseRow):
    """An antiviral or antimicrobial prophylaxis: the agent, since when and until when (no
    end date: still given)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="prophylaxes")
    agent = models.CharField(_("agent"), max_length=200)
    kind = models.CharField(_("kind"), max_length=15, choices=ProphylaxisKind.choices)
    since = models.DateField(_("since"))
    since_precision = date_precision()
    until = models.DateField(_("until"), null=True, blank=True)
    until_precision = date_precision()

    class Meta(CaseRow.Meta):
        verbose_name = _("prophylaxis")
        constraints = date_precision_checks("prophylaxis", "since", "until")

    def __str__(self) -> str:
        return self.agent


class Vaccination(CaseRow):
    """One vaccination with its date. Rows made from the free text findings held before
    vaccinations were rows carry that text verbatim in `note` and may have no vaccine or date."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="vaccinations")
    vaccine = models.CharField(_("vaccine"), max_length=200, blank=True)
    given_on = models.DateField(_("date"), null=True, blank=True)
    given_on_precision = date_precision()
    note = models.TextField(_("note"), blank=True)

    class Meta(CaseRow.Meta):
        verbose_name = _("vaccination")
        constraints = date_precision_checks("vaccination", "given_on")

    def __str__(self) -> str:
        return self.vaccine


class Comorbidity(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="comorbidities")
    name = models.CharField(_("comorbidity"), max_length=200)
    since = models.DateField(_("since"), null=True, blank=True)
    since_precision = date_precision()
    note = models.CharField(_("note"), max_length=300, blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("comorbidity", "since")

    def __str__(self) -> str:
        return self.name


class OrganFunction(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="organ_functions")
    measured_on = models.DateField(_("date"))
    measured_on_precision = date_precision()
    egfr = models.DecimalField(
        _("eGFR (mL/min/1.73 m²)"), max_digits=6, decimal_places=1, null=True, blank=True
    )
    bilirubin = models.DecimalField(
        _("bilirubin (mg/dL)"), max_digits=6, decimal_places=2, null=True, blank=True
    )
    alt = models.DecimalField(_("ALT (U/L)"), max_digits=7, decimal_places=1, null=True, blank=True)
    ast = models.DecimalField(_("AST (U/L)"), max_digits=7, decimal_places=1, null=True, blank=True)
    lvef = models.PositiveSmallIntegerField(_("LVEF (%)"), null=True, blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("organfunction", "measured_on")

    def __str__(self) -> str:
        return str(self.measured_on)


class MedicationKind(models.TextChoices):
    REGULAR = "regular", _("regular medication")
    SUPPLEMENT = "supplement", _("supplement")
    ANTICOAGULANT = "anticoagulant", _("anticoagulant")
    OTHER = "other", _("other")


class Medication(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="medications")
    name = models.CharField(_("medication"), max_length=200)
    kind = models.CharField(_("kind"), max_length=15, choices=MedicationKind.choices)
    dose = models.CharField(_("dose"), max_length=100, blank=True)

    class Meta(CaseRow.Meta):
        pass

    def __str__(self) -> str:
        return self.name


# --- case record III: lifestyle, family history, genomic findings ---------------------------
# Recorded as the physician and the laboratory report them. Nothing here weighs a finding:
# no actionability, tier, drug match or evidence level is stored, computed or shown.


class SmokingStatus(models.TextChoices):
    NEVER = "never", _("never smoked")
    FORMER = "former", _("former smoker")
    CURRENT = "current", _("current smoker")
    UNKNOWN = "unknown", _("unknown")


class AlcoholUse(models.TextChoices):
    NONE = "none", _("none")
    OCCASIONAL = "occasional", _("occasional")
    REGULAR = "regular", _("regular")
    UNKNOWN = "unknown", _("unknown")


class Lifestyle(CaseRow):
    """Smoking and alcohol as stated on a date; repeatable (a later statement beside an
    earlier one, never over it)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="lifestyle")
    recorded_on = models.DateField(_("stated on"))
    recorded_on_precision = date_precision()
    smoking = models.CharField(_("smoking"), max_length=10, choices=SmokingStatus.choices)
    pack_years = models.DecimalField(
        _("pack-years"), max_digits=4, decimal_places=1, null=True, blank=True
    )
    quit_on = models.DateField(_("stopped smoking on"), null=True, blank=True)
    quit_on_precision = date_precision()
    alcohol = models.CharField(_("alcohol"), max_length=10, choices=AlcoholUse.choices, blank=True)
    alcohol_units_per_week = models.DecimalField(
        _("alcohol units per week"), max_digits=5, decimal_places=1, null=True, blank=True
    )
    comment = models.TextField(_("physician's comment"), blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("lifestyle", "recorded_on", "quit_on") + [
            models.CheckConstraint(
                condition=models.Q(pack_years__isnull=True)
                | models.Q(pack_years__gte=0, pack_years__lte=300),
                name="lifestyle_pack_years_0_to_300",
            ),
            models.CheckConstraint(
                condition=models.Q(alcohol_units_per_week__isnull=True)
                | models.Q(alcohol_units_per_week__gte=0),
                name="lifestyle_alcohol_units_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return str(self.recorded_on)


class RelativeDegree(models.TextChoices):
    FIRST = "first", _("first-degree")
    SECOND = "second", _("second-degree")


class Relation(models.TextChoices):
    MOTHER = "mother", _("mother")
    FATHER = "father", _("father")
    SISTER = "sister", _("sister")
    BROTHER = "brother", _("brother")
    DAUGHTER = "daughter", _("daughter")
    SON = "son", _("son")
    GRANDMOTHER = "grandmother", _("grandmother")
    GRANDFATHER = "grandfather", _("grandfather")
    AUNT = "aunt", _("aunt")
    UNCLE = "uncle", _("uncle")
    NIECE = "niece", _("niece")
    NEPHEW = "nephew", _("nephew")
    HALF_SISTER = "half_sister", _("half-sister")
    HALF_BROTHER = "half_brother", _("half-brother")
    GRANDDAUGHTER = "granddaughter", _("granddaughter")
    GRANDSON = "grandson", _("grandson")


# The degree of kinship each relation is (a half-sibling shares a quarter of the genome).
FIRST_DEGREE_RELATIONS = {"mother", "father", "sister", "brother", "daughter", "son"}


class FamilySide(models.TextChoices):
    MATERNAL = "maternal", _("maternal")
    PATERNAL = "paternal", _("paternal")


class GermlineTesting(models.TextChoices):
    NOT_OFFERED = "not_offered", _("not offered")
    OFFERED = "offered", _("offered, not (yet) done")
    DECLINED = "declined", _("declined")
    DONE = "done", _("done")
    UNKNOWN = "unknown", _("unknown")


class FamilyHistory(CaseRow):
    """A relative's cancer, as the patient or the records tell it. The relative's germline
    testing is recorded here; the patient's own germline findings are genomic variants with
    the origin "germline"."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="family_history")
    degree = models.CharField(_("degree of kinship"), max_length=10, choices=RelativeDegree.choices)
    relation = models.CharField(_("relation"), max_length=15, choices=Relation.choices, blank=True)
    side = models.CharField(
        _("side of the family"), max_length=10, choices=FamilySide.choices, blank=True
    )
    # The OncoTree type when picked from the list (code and name as OncoTree gives them),
    # else the words typed, with no code.
    cancer_type = models.CharField(_("cancer type"), max_length=300)
    oncotree_code = models.CharField(_("OncoTree code"), max_length=40, blank=True)
    age_at_diagnosis = models.PositiveSmallIntegerField(
        _("age at diagnosis"), null=True, blank=True
    )
    hereditary_syndrome = models.CharField(
        _("known hereditary syndrome in the family"), max_length=300, blank=True
    )
    germline_testing = models.CharField(
        _("germline testing of the relative"),
        max_length=12,
        choices=GermlineTesting.choices,
        blank=True,
    )
    germline_result = models.CharField(_("germline test result"), max_length=300, blank=True)
    comment = models.TextField(_("physician's comment"), blank=True)

    class Meta(CaseRow.Meta):
        constraints = [
            models.CheckConstraint(
                condition=models.Q(age_at_diagnosis__isnull=True)
                | models.Q(age_at_diagnosis__lte=120),
                name="family_history_age_plausible",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.relation}: {self.cancer_type}"


class GenomicResultKind(models.TextChoices):
    VARIANT = "variant", _("variant")
    TMB = "tmb", _("tumour mutational burden (TMB)")
    MSI = "msi", _("microsatellite status (MSI)")


class VariantType(models.TextChoices):
    SNV = "snv", _("single-nucleotide variant (SNV)")
    INDEL = "indel", _("insertion / deletion (indel)")
    FUSION = "fusion", _("fusion")
    CN_GAIN = "cn_gain", _("copy-number gain")
    CN_LOSS = "cn_loss", _("copy-number loss")
    EXON_SKIPPING = "exon_skipping", _("exon skipping")
    OTHER = "other", _("other")


class VariantOrigin(models.TextChoices):
    SOMATIC = "somatic", _("somatic")
    GERMLINE = "germline", _("germline")
    UNKNOWN = "unknown", _("unknown")


class VariantAssayMethod(models.TextChoices):
    NGS = "ngs", _("NGS")
    PCR = "pcr", _("PCR")
    FISH = "fish", _("FISH")
    IHC = "ihc", _("IHC (surrogate)")
    OTHER = "other", _("other")


class MicrosatelliteStatus(models.TextChoices):
    MSI_HIGH = "msi_h", _("MSI-high")
    MSI_LOW = "msi_l", _("MSI-low")
    MSS = "mss", _("microsatellite stable (MSS)")
    INDETERMINATE = "indeterminate", _("indeterminate")


class GenomicVariant(CaseRow):
    """One result of a molecular report: a variant (gene, HGVS c. and p., type, origin,
    allele frequency) or a genomic signature (TMB, MSI), with its specimen, assay, laboratory,
    report date and status. Pending / failed / not tested as for biomarkers: a missing result
    is never shown as negative. The gene is kept as typed when it is not an approved HGNC
    symbol (the form warns)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="genomic_variants")
    result_kind = models.CharField(_("result"), max_length=10, choices=GenomicResultKind.choices)
    status = models.CharField(_("status"), max_length=12, choices=ResultStatus.choices)
    gene = models.CharField(_("gene"), max_length=40, blank=True)
    transcript = models.CharField(_("reference sequence"), max_length=40, blank=True)
    hgvs_c = models.CharField(_("coding DNA change (HGVS c.)"), max_length=200, blank=True)
    hgvs_p = models.CharField(_("protein change (HGVS p.)"), max_length=200, blank=True)
    variant_type = models.CharField(
        _("variant type"), max_length=15, choices=VariantType.choices, blank=True
    )
    partner_gene = models.CharField(_("fusion partner gene"), max_length=40, blank=True)
    exons = models.CharField(_("exon(s)"), max_length=40, blank=True)
    origin = models.CharField(_("origin"), max_length=10, choices=VariantOrigin.choices, blank=True)
    vaf = models.DecimalField(
        _("variant allele frequency (%)"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    tmb = models.DecimalField(
        _("tumour mutational burden (mutations/Mb)"),
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
    )
    msi = models.CharField(
        _("microsatellite status"), max_length=15, choices=MicrosatelliteStatus.choices, blank=True
    )
    specimen = models.CharField(_("specimen"), max_length=200, blank=True)
    assay_method = models.CharField(
        _("assay method"), max_length=10, choices=VariantAssayMethod.choices, blank=True
    )
    assay = models.CharField(_("assay or panel"), max_length=200, blank=True)
    laboratory = models.CharField(_("laboratory"), max_length=200, blank=True)
    reported_on = models.DateField(_("report date"), null=True, blank=True)
    reported_on_precision = date_precision()
    comment = models.TextField(_("physician's comment"), blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("genomicvariant", "reported_on") + [
            models.CheckConstraint(
                condition=models.Q(vaf__isnull=True) | models.Q(vaf__gte=0, vaf__lte=100),
                name="genomic_vaf_0_to_100",
            ),
            models.CheckConstraint(
                condition=models.Q(tmb__isnull=True) | models.Q(tmb__gte=0),
                name="genomic_tmb_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.gene or self.get_result_kind_display()


# --- catalogue ------------------------------------------------------------------------------


class CatalogueVersionQuerySet(PracticeScopedQuerySet["CatalogueVersion"]):
    def published(self) -> Self:
        return self.filter(published_at__isnull=False)

    def newest_published(self) -> CatalogueVersion | None:
        """The practice's current catalogue: scope with `for_practice` first."""
        return self.published().order_by("-number").first()


class CatalogueVersion(PracticeScoped):
    """A version of the practice's catalogue. Drafts have no `published_at`; a published
    version is never edited again: edits go into a new draft."""

    number = models.PositiveIntegerField()
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    change_note = models.TextField(blank=True)
    based_on_shipped = models.CharField(max_length=40, blank=True)
    mechanisms = models.JSONField(default=list, blank=True)
    orientation = models.JSONField(default=list, blank=True)
    goals = models.JSONField(default=list, blank=True)
    disclaimer_en = models.TextField(blank=True)
    disclaimer_de = models.TextField(blank=True)
    source_title = models.CharField(max_length=300, blank=True)

    objects = CatalogueVersionQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["practice", "number"], name="catalogue_number"),
        ]

    def __str__(self) -> str:
        return f"v{self.number}"

    @property
    def is_draft(self) -> bool:
        return self.published_at is None


class Category(PracticeScoped):
    # The text a version documents for a category, in the order the diff between versions
    # shows it. A checklist keeps an item's status across a move only if all of it is unchanged.
    TEXT_FIELDS = [
        "group_en",
        "group_de",
        "name_en",
        "name_de",
        "description_en",
        "description_de",
        "source_section",
        "source_quote",
        "mechanisms",
    ]

    version = models.ForeignKey(
        CatalogueVersion, on_delete=models.CASCADE, related_name="categories"
    )
    code = models.CharField(_("code"), max_length=40)
    position = models.PositiveSmallIntegerField(_("position"))
    group_en = models.CharField(_("group (English)"), max_length=200)
    group_de = models.CharField(_("group (German)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200)
    name_de = models.CharField(_("name (German)"), max_length=200)
    description_en = models.TextField(_("description (English)"))
    description_de = models.TextField(_("description (German)"))
    mechanisms = models.JSONField(default=list, blank=True)
    source_section = models.CharField(_("source section"), max_length=200)
    source_quote = models.TextField(_("source sentence"))
    active = models.BooleanField(_("active"), default=True)

    class Meta(PracticeScoped.Meta):
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "code"], name="category_code"),
        ]

    def __str__(self) -> str:
        return self.name_en

    def name(self, language: str | None) -> str:
        return self.name_de if (language or "").startswith("de") else self.name_en

    def description(self, language: str | None) -> str:
        return self.description_de if (language or "").startswith("de") else self.description_en

    def group(self, language: str | None) -> str:
        return self.group_de if (language or "").startswith("de") else self.group_en


class ItemStatus(models.TextChoices):
    NOT_YET_REVIEWED = "not_yet_reviewed", _("not yet reviewed")
    RAISE = "raise", _("raise at board")
    DISCUSSED = "discussed", _("discussed")
    NOT_RAISED = "not_raised", _("not raised")


class ChecklistQuerySet(PracticeScopedQuerySet["Checklist"]):
    def worked_under(self, case: Case) -> tuple[Checklist | None, CatalogueVersion | None]:
        """The case's checklist (None before its first save) and the catalogue version it is
        worked under: its own, or before the first save the practice's newest published one."""
        checklist = self.filter(case=case).select_related("version").first()
        if checklist is not None:
            return checklist, checklist.version
        newest = CatalogueVersion.objects.for_practice(case.practice_id).newest_published()
        return None, newest


class Checklist(PracticeScoped):
    """A case's checklist, worked under one catalogue version until the physician moves it."""

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="checklist")
    version = models.ForeignKey(CatalogueVersion, on_delete=models.PROTECT, related_name="+")
    moved_at = models.DateTimeField(null=True, blank=True)

    objects = ChecklistQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    class Meta(PracticeScoped.Meta):
        pass

    def __str__(self) -> str:
        return f"checklist of case {self.case_id}"


class ChecklistItem(PracticeScoped):
    checklist = models.ForeignKey(Checklist, on_delete=models.CASCADE, related_name="items")
    # The case again, so that the audit trail files every change under the case's history.
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=ItemStatus.choices,
        default=ItemStatus.NOT_YET_REVIEWED,
    )
    note = models.TextField(_("note"), blank=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    set_at = models.DateTimeField(null=True, blank=True)
    # After a move to a newer catalogue version, a changed category starts again as "not yet
    # reviewed"; what it said before is kept here and shown.
    previous_status = models.CharField(max_length=20, choices=ItemStatus.choices, blank=True)
    previous_note = models.TextField(blank=True)
    revision = models.PositiveIntegerField(default=1)

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["checklist", "category"], name="item_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.category_id}: {self.status}"


# --- tumour-board notes ----------------------------------------------------------------------


class BoardNoteQuerySet(PracticeScopedQuerySet):
    def for_list(self) -> BoardNoteQuerySet:
        """What the note list shows and filters on: the case and author, the number, state and
        board date of each note's newest version, whether any version is signed and whether
        an outcome is recorded. (Typed as the plain class, like CaseQuerySet's methods: with
        `Self` the Django mypy plugin rejects filters on the annotations.)"""
        latest = BoardNoteVersion.objects.newest_first(note=models.OuterRef("pk"))
        signed = BoardNoteVersion.objects.filter(note=models.OuterRef("pk"), state=NoteState.SIGNED)
        return self.select_related("case", "created_by").annotate(
            latest_number=models.Subquery(latest.values("number")[:1]),
            latest_state=models.Subquery(latest.values("state")[:1]),
            board_date=models.Subquery(latest.values("board_date")[:1]),
            has_signed=models.Exists(signed),
            has_outcome=models.Exists(BoardOutcome.objects.filter(note=models.OuterRef("pk"))),
        )


class BoardNote(PracticeScoped):
    """A case's registration and note for one tumour board; its content lives in versions."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="board_notes")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    objects = BoardNoteQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    class Meta(PracticeScoped.Meta):
        pass

    def __str__(self) -> str:
        return f"board note {self.pk} of case {self.case_id}"


class NoteState(models.TextChoices):
    DRAFT = "draft", _("draft")
    READY = "ready", _("ready")
    SIGNED = "signed", _("signed")


class BoardNoteVersionQuerySet(PracticeScopedQuerySet["BoardNoteVersion"]):
    def newest_first(self, *, note: BoardNote | models.OuterRef) -> Self:
        """A note's versions, newest first; `note` may be an OuterRef in a subquery."""
        return self.filter(note=note).order_by("-number")

    def latest_only(self) -> Self:
        """Only each note's newest version (a signed version that has an amendment drops out)."""
        latest = BoardNoteVersion.objects.newest_first(note=models.OuterRef("note"))
        return self.filter(number=models.Subquery(latest.values("number")[:1]))


class BoardNoteVersion(PracticeScoped):
    """One version of a board note. Once signed the row is immutable: the database refuses
    UPDATE and DELETE of a signed row (migration trigger), and an amendment is a new row."""

    # What the physician fills in; copied into an amendment and into the snapshot.
    REGISTRATION_FIELDS = [
        "registering_physician",
        "board",
        "target_board",
        "board_type",
        "board_date",
        "board_date_retrospective",
        "images_available",
        "question",
        "question_radiology",
        "question_pathology",
        "question_radiotherapy",
        "question_surgery",
        "patient_informed",
        "patient_goals",
        "trial_screening",
        "requested_participants",
        "history_summary",
        "open_questions",
    ]

    note = models.ForeignKey(BoardNote, on_delete=models.PROTECT, related_name="versions")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=10, choices=NoteState.choices, default=NoteState.DRAFT)
    revision = models.PositiveIntegerField(default=1)  # bumped by every edit of a draft
    supersedes = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    amendment_reason = models.TextField(_("reason for the amendment"), blank=True)

    registering_physician = models.CharField(_("registering physician"), max_length=200)
    # One of the practice's boards: with a date, the note is on that meeting's agenda. The
    # board's name is copied into target_board (what the note shows); a board that is not one
    # of the practice's is named in target_board alone.
    board = models.ForeignKey(
        "Board",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("board of the practice"),
    )
    target_board = models.CharField(_("tumour board"), max_length=200)
    board_type = models.CharField(_("board type"), max_length=10)
    board_date = models.DateField(_("preferred board date"), null=True, blank=True)
    # A board date in the past is taken only with this confirmation, and the note says so.
    board_date_retrospective = models.BooleanField(
        _("board date entered after the fact"), default=False
    )
    images_available = models.BooleanField(_("images available for the board"), default=False)
    question = models.TextField(_("question for the board"))
    question_radiology = models.TextField(_("question to radiology"), blank=True)
    question_pathology = models.TextField(_("question to pathology"), blank=True)
    question_radiotherapy = models.TextField(_("question to radiotherapy"), blank=True)
    question_surgery = models.TextField(_("question to surgery"), blank=True)
    patient_informed = models.BooleanField(_("patient is informed"), default=False)
    patient_goals = models.TextField(_("patient's goals and wishes"), blank=True)
    trial_screening = models.TextField(_("trial screening"), blank=True)
    requested_participants = models.CharField(
        _("requested participants"), max_length=300, blank=True
    )
    history_summary = models.TextField(_("history summary"), blank=True)
    open_questions = models.TextField(_("open questions"), blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    ready_at = models.DateTimeField(null=True, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    snapshot = models.JSONField(null=True, blank=True)
    snapshot_hash = models.CharField(max_length=64, blank=True)

    objects = BoardNoteVersionQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["note", "number"], name="note_version_number"),
            models.CheckConstraint(
                condition=models.Q(state="signed", signed_at__isnull=False, snapshot_hash__gt="")
                | ~models.Q(state="signed"),
                name="signed_has_hash",
            ),
        ]

    def __str__(self) -> str:
        return f"note {self.note_id} v{self.number}"


class BoardOutcome(PracticeScoped):
    """What the board documented, recorded after it met: versioned rows, never updated."""

    note = models.ForeignKey(BoardNote, on_delete=models.PROTECT, related_name="outcomes")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveSmallIntegerField()
    held_on = models.DateField(_("board held on"))
    attendees = models.TextField(_("attendees"))
    measures = models.JSONField(default=list)  # [{"text": ..., "deviation": "J"|"N"|"U"|""}]
    follow_up_on = models.DateField(_("follow-up date"), null=True, blank=True)
    reason = models.TextField(_("reason for the new version"), blank=True)
    # The meeting's agenda item it was recorded for (meeting mode); none when recorded on the
    # note's own page.
    agenda_item = models.ForeignKey(
        "AgendaItem", on_delete=models.PROTECT, null=True, blank=True, related_name="outcomes"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["note", "number"], name="outcome_number"),
        ]

    def __str__(self) -> str:
        return f"outcome {self.number} of note {self.note_id}"


# --- tumour-board meetings -------------------------------------------------------------------


class Discipline(models.TextChoices):
    RADIOLOGY = "radiology", _("radiology")
    PATHOLOGY = "pathology", _("pathology")
    RADIATION_ONCOLOGY = "radiation_oncology", _("radiation oncology")
    SURGERY = "surgery", _("surgery")
    MEDICAL_ONCOLOGY = "medical_oncology", _("medical oncology")
    HAEMATOLOGY = "haematology", _("haematology")
    GYNAECOLOGY = "gynaecology", _("gynaecology")
    NUCLEAR_MEDICINE = "nuclear_medicine", _("nuclear medicine")
    PALLIATIVE_CARE = "palliative_care", _("palliative care")
    PSYCHO_ONCOLOGY = "psycho_oncology", _("psycho-oncology")
    NURSING = "nursing", _("nursing")
    OTHER = "other", _("other discipline")


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class Board(PracticeScoped):
    """A practice's standing tumour board: when it usually meets and which disciplines are
    expected (the quorum a meeting shows; never enforced)."""

    name = models.CharField(_("name"), max_length=200)
    weekday = models.PositiveSmallIntegerField(_("usual weekday"), choices=Weekday.choices)
    starts_at = models.TimeField(_("usual time"))
    minutes_per_case = models.PositiveSmallIntegerField(_("minutes per case"), default=10)
    disciplines = ArrayField(
        models.CharField(max_length=30, choices=Discipline.choices),
        verbose_name=_("disciplines expected"),
        default=list,
        blank=True,
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(PracticeScoped.Meta):
        verbose_name = _("board")
        constraints = [
            models.UniqueConstraint(fields=["practice", "name"], name="board_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def discipline_labels(self) -> list[str]:
        labels = dict(Discipline.choices)
        return [str(labels.get(code, code)) for code in self.disciplines]


class BoardMeeting(PracticeScoped):
    """One meeting of a board on a date, with its agenda and attendance."""

    board = models.ForeignKey(Board, on_delete=models.PROTECT, related_name="meetings")
    date = models.DateField(_("date"))
    starts_at = models.TimeField(_("time"))
    registration_closed = models.BooleanField(_("registration closed"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )

    class Meta(PracticeScoped.Meta):
        verbose_name = _("board meeting")
        constraints = [
            models.UniqueConstraint(fields=["board", "date"], name="meeting_board_date"),
        ]
        indexes = [models.Index(fields=["practice", "date"], name="meeting_practice_date")]

    def __str__(self) -> str:
        return f"{self.board_id} {self.date}"


class AgendaStatus(models.TextChoices):
    PENDING = "pending", _("on the agenda")
    DISCUSSED = "discussed", _("discussed, decision recorded")
    DEFERRED = "deferred", _("deferred to the next meeting")
    NOT_DISCUSSED = "not_discussed", _("not discussed")


class AgendaItemQuerySet(PracticeScopedQuerySet["AgendaItem"]):
    def for_agenda(self, *, snapshots: bool = False) -> Self:
        """The agenda's rows with what it shows of each case, in the coordinator's order: the
        case and its tumours, the registering user, each note's newest version (the note's
        state comes from the note itself, never from a copy) and its signed versions (with
        their snapshots if `snapshots`). A fixed number of queries however many cases."""
        newest = BoardNoteVersion.objects.latest_only().order_by().defer("snapshot")
        signed = (
            BoardNoteVersion.objects.filter(state=NoteState.SIGNED)
            .select_related("supersedes")
            .order_by("-number")
        )
        if not snapshots:
            signed = signed.defer("snapshot", "supersedes__snapshot")
        tumours = Tumour.objects.order_by("pk")
        queryset = (
            self.select_related(
                "case", "note", "registered_by__account_profile", "draft", "moved_from"
            )
            .prefetch_related(models.Prefetch("case__tumours", queryset=tumours))
            .prefetch_related(models.Prefetch("note__versions", queryset=newest, to_attr="newest"))
            .prefetch_related(models.Prefetch("note__versions", queryset=signed, to_attr="signed"))
        )
        return queryset.order_by("position", "registered_at", "pk")


class AgendaItem(PracticeScoped):
    """A board note on a meeting's agenda. It names the note, never one signed version: the
    agenda always shows the note as it is. Ordered by the coordinator (`position`), by
    registration time until then; never by anything clinical."""

    meeting = models.ForeignKey(BoardMeeting, on_delete=models.PROTECT, related_name="items")
    note = models.ForeignKey(BoardNote, on_delete=models.PROTECT, related_name="agenda_items")
    # The case again, so that the audit trail files every change under the case's history.
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(
        _("status"), max_length=20, choices=AgendaStatus.choices, default=AgendaStatus.PENDING
    )
    registered_at = models.DateTimeField(auto_now_add=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Set when a coordinator moved the case here from another meeting; the physician sees why.
    moved_from = models.ForeignKey(
        BoardMeeting,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("moved from meeting"),
    )
    move_reason = models.TextField(_("reason for the move"), blank=True)
    moved_at = models.DateTimeField(null=True, blank=True)
    moved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Deferred from an earlier meeting: the item there that was deferred.
    deferred_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = AgendaItemQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    class Meta(PracticeScoped.Meta):
        verbose_name = _("agenda item")
        constraints = [
            models.UniqueConstraint(fields=["meeting", "note"], name="agenda_note_once"),
        ]

    def __str__(self) -> str:
        return f"agenda item {self.pk} of meeting {self.meeting_id}"

    @property
    def newest_version(self) -> BoardNoteVersion | None:
        """The note's newest version (prefetched by `for_agenda`)."""
        newest = getattr(self.note, "newest", None)
        if newest is None:
            return self.note.versions.order_by("-number").first()
        return newest[0] if newest else None

    @property
    def signed_version(self) -> BoardNoteVersion | None:
        """The note's newest signed version (prefetched by `for_agenda`)."""
        signed = getattr(self.note, "signed", None)
        if signed is None:
            return self.note.versions.filter(state=NoteState.SIGNED).order_by("-number").first()
        return signed[0] if signed else None


class Attendance(PracticeScoped):
    """Who attended a meeting, in which discipline: recorded once per meeting."""

    meeting = models.ForeignKey(BoardMeeting, on_delete=models.PROTECT, related_name="attendance")
    name = models.CharField(_("name"), max_length=200)
    discipline = models.CharField(_("discipline"), max_length=30, choices=Discipline.choices)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta(PracticeScoped.Meta):
        verbose_name = _("attendance")

    def __str__(self) -> str:
        return f"{self.discipline} at meeting {self.meeting_id}"


class OutcomeDraft(PracticeScoped):
    """The board decision being typed in meeting mode, saved as it is typed. The recorded
    outcome (BoardOutcome) is immutable, so autosave writes here; finalising turns the draft
    into an outcome and removes the draft."""

    item = models.OneToOneField(AgendaItem, on_delete=models.CASCADE, related_name="draft")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    measures = models.JSONField(default=list)  # as BoardOutcome.measures
    follow_up_on = models.DateField(_("follow-up date"), null=True, blank=True)
    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta(PracticeScoped.Meta):
        verbose_name = _("board decision draft")

    def __str__(self) -> str:
        return f"draft of agenda item {self.item_id}"


class SubmissionToken(models.Model):
    """A form submission that was applied, under the one-time token its form carried.

    A second POST with the same token finds this row and is answered "already saved"; the rows
    of the last minutes also tell whether this user has just saved the same entry (the form page
    reloads with a fresh token after Back). Written by `services.claim_submission` in the
    transaction of the save itself.

    No practice_id and not PracticeScoped: rows with that column are copied whole into the audit
    trail by the capture triggers, and a token is bookkeeping, not a change of the record (the
    row the submission created is audited as usual). Tokens expire after `LIFETIME`: a form
    older than that is refused, and each claim deletes up to 100 expired rows.
    """

    LIFETIME = timedelta(hours=24)
    SALT = "checklist.submission-token"

    token = models.UUIDField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=30)  # a row kind ("comorbidity"), "case", "note", ...
    scope_id = models.BigIntegerField(null=True)  # the case, note or catalogue version
    object_id = models.BigIntegerField(null=True)  # the row the submission created or changed
    revision = models.PositiveIntegerField(null=True)  # the note revision an edit produced
    digest = models.CharField(max_length=64, blank=True)  # keyed hash of the submitted values

    class Meta:
        indexes = [
            models.Index(
                fields=["user", "kind", "scope_id", "created_at"], name="submission_recent"
            ),
            models.Index(fields=["created_at"], name="submission_expiry"),
        ]

    def __str__(self) -> str:
        return f"submission {self.kind} {self.object_id}"

    @classmethod
    def issue(cls, user: Any) -> str:
        """A new token for a form shown to `user`: signed, so that its age and owner are known
        without storing tokens that are never used."""
        return signing.TimestampSigner(salt=cls.SALT).sign(f"{user.pk}:{uuid.uuid4()}")

    @classmethod
    def read(cls, value: str, user: Any) -> uuid.UUID:
        """The token's id; ValueError if it is altered, expired or another user's."""
        try:
            text = signing.TimestampSigner(salt=cls.SALT).unsign(value, max_age=cls.LIFETIME)
        except signing.BadSignature as error:  # SignatureExpired is a BadSignature
            raise ValueError("invalid or expired submission token") from error
        owner, _sep, token = text.partition(":")
        if owner != str(user.pk):
            raise ValueError("submission token of another user")
        return uuid.UUID(token)


class AuditVerification(models.Model):
    """The result of one run of the chain verification for a practice. Kept outside the trail
    (no practice_id column, no capture): recording a verification must not extend the very
    chain it verified."""

    chain = models.BigIntegerField()  # the practice whose chain was verified
    ran_at = models.DateTimeField(auto_now_add=True)
    ran_by = models.CharField(max_length=150, blank=True)
    ok = models.BooleanField()
    events = models.PositiveBigIntegerField()
    head_seq = models.PositiveBigIntegerField()
    broken_at = models.PositiveBigIntegerField(null=True)
    reason = models.CharField(max_length=100, blank=True)

    class Meta:
        indexes = [models.Index(fields=["chain", "ran_at"], name="verification_chain")]

    def __str__(self) -> str:
        return f"verification {self.ran_at}: {'OK' if self.ok else 'BROKEN'}"


class AuditCheckpoint(models.Model):
    """A copy of one signed checkpoint of a chain's head, for display only: the signed lines in
    the external store (settings.AUDIT_CHECKPOINT_STORE) are what `audit_verify` trusts. No
    practice_id column, so no capture: taking a checkpoint does not extend the chain."""

    chain = models.BigIntegerField()  # the practice whose chain head was signed
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    taken_at = models.DateTimeField()
    signature = models.CharField(max_length=100)

    class Meta:
        indexes = [models.Index(fields=["chain", "-seq"], name="checkpoint_chain")]

    def __str__(self) -> str:
        return f"checkpoint {self.chain}@{self.seq}"


class AuditEvent(models.Model):
    """One central, append-only, hash-chained trail of changes and access events.

    Rows are written only by the SQL function `audit_append` (triggers and audit.record_access)
    and refused UPDATE/DELETE by a trigger. practice_id 0 is the chain of events that belong to
    no practice (a failed login for an unknown user name). It is not a foreign key: the trail
    outlives anything it talks about.
    """

    pk = models.CompositePrimaryKey("practice_id", "seq")
    practice_id = models.BigIntegerField()
    seq = models.BigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    ts = models.DateTimeField()
    kind = models.CharField(max_length=10)  # change | access
    table_name = models.CharField(max_length=63, blank=True)
    op = models.CharField(max_length=40)
    row_id = models.CharField(max_length=64, blank=True, null=True)  # noqa: DJ001
    case_id = models.BigIntegerField(null=True)  # the case the row belongs to, for histories
    actor_id = models.BigIntegerField(null=True)
    actor_name = models.CharField(max_length=150, blank=True, null=True)  # noqa: DJ001
    path = models.CharField(max_length=500, blank=True, null=True)  # noqa: DJ001
    request_id = models.CharField(max_length=64, blank=True, null=True)  # noqa: DJ001
    old_values = models.JSONField(null=True)
    new_values = models.JSONField(null=True)
    detail = models.JSONField(null=True)

    class Meta:
        # The table, its indexes and its guards are created by the migrations; no flush (the
        # test runner's, `manage.py flush`) lists an unmanaged table, so none tries to TRUNCATE
        # it, which the guard refuses.
        managed = False
        indexes = [
            # The trail is appended in time order: a BRIN index serves date ranges at almost no
            # cost per insert.
            BrinIndex(fields=["ts"], name="audit_ts_brin"),
            models.Index(fields=["practice_id", "case_id", "seq"], name="audit_case"),
        ]

    def __str__(self) -> str:
        return f"{self.practice_id}#{self.seq} {self.kind} {self.op}"


# The older name of `display_name`, still imported by the note code.
user_display = display_name


class CodeQuerySet(models.QuerySet):
    def of(self, system: str) -> CodeQuerySet:
        return self.filter(system=system).order_by("sort")


class Code(models.Model):
    """An entry of a shipped code list (OncoTree, oBDS, MII), with the release it came from.

    Shared reference data, the same for every practice, loaded by `manage.py load_codelists`
    from fixtures/codelists.json. Credits in README.md.
    """

    system = models.CharField(max_length=100)
    code = models.CharField(max_length=40)
    display = models.CharField(max_length=300)
    display_de = models.CharField(max_length=300)
    release = models.CharField(max_length=60)
    parent = models.CharField(max_length=40, null=True, blank=True)  # noqa: DJ001
    level = models.PositiveSmallIntegerField(default=0)
    selectable = models.BooleanField(default=True)
    sort = models.PositiveIntegerField(default=0)
    extra = models.JSONField(default=dict, blank=True)

    objects = CodeQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "code"], name="code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.system}:{self.code}"

    def label(self, language: str | None = None) -> str:
        if (language or "").startswith("de"):
            return self.display_de or self.display
        return self.display


# --- FHIR import: the learned code map and the preview state -----------------------------------


class CodeMapping(PracticeScoped):
    """A code of another system that a physician of the practice mapped to one of ours (an
    OncoTree node, an oBDS metastasis site) during a FHIR import; the next import proposes it
    and asks nothing for it. The source display is kept for reading only."""

    source_system = models.CharField(_("code system"), max_length=200)
    source_code = models.CharField(_("code"), max_length=100)
    source_version = models.CharField(_("version"), max_length=200, blank=True)
    display = models.CharField(_("display text of the source"), max_length=300, blank=True)
    target_system = models.CharField(_("our code system"), max_length=40)
    target_code = models.CharField(_("our code"), max_length=40)
    mapped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    mapped_at = models.DateTimeField(_("mapped at"))

    class Meta(PracticeScoped.Meta):
        verbose_name = _("learned code mapping")
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "practice",
                    "source_system",
                    "source_code",
                    "source_version",
                    "target_system",
                ],
                name="code_mapping_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_system}|{self.source_code} -> {self.target_system}:{self.target_code}"


class FhirImportPreview(models.Model):
    """The mapped structure of an uploaded bundle between upload and confirmation: no names,
    no identifiers (fhir_import scrubs every text it keeps). Owned by the uploading user in
    one practice; expires after `LIFETIME`. Deliberately without a `practice_id` column, so
    the audit capture does not copy it into the trail (the import itself is audited)."""

    LIFETIME = timedelta(days=1)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    owner_practice = models.BigIntegerField()  # the practice it was uploaded in
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    bundle_sha256 = models.CharField(max_length=64)
    entries = models.PositiveIntegerField()
    data = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="fhir_preview_expiry")]

    def __str__(self) -> str:
        return f"FHIR import preview {self.pk}"
