"""The domain's nouns. Every clinical, catalogue and membership row carries `practice_id` and is
audited by database triggers from its first migration (see audit.py and PracticeScoped)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Self, TypeVar

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.contrib.sessions.base_session import AbstractBaseSession
from django.core import signing
from django.db import models
from django.utils.functional import cached_property
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


class PracticeScoped(models.Model):
    """Base of every row that belongs to a practice: the tenant key and the audit capture."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="+")

    objects = PracticeScopedQuerySet.as_manager()

    class Meta:
        abstract = True
        triggers = AUDIT_TRIGGERS


class Membership(PracticeScoped):
    PHYSICIAN = "physician"
    PRACTICE_ADMIN = "practice_admin"
    ROLE_CHOICES = [(PHYSICIAN, _("Physician")), (PRACTICE_ADMIN, _("Practice admin"))]

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
                condition=models.Q(role__in=["physician", "practice_admin"]),
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
            | has(ImmuneAdverseEvent)
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
        choices=[("R0", "R0"), ("R1", "R1"), ("R2", "R2"), ("RX", "RX")],
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
    TISSUE = "tissue", _("tissue")
    SERUM = "serum", _("serum")
    GERMLINE = "germline", _("germline")


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
    kind = models.CharField(_("kind"), max_length=10, choices=BiomarkerKind.choices)
    specimen = models.CharField(_("specimen"), max_length=200, blank=True)
    sampled_on = models.DateField(_("date"), null=True, blank=True)
    sampled_on_precision = date_precision()
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
    IMAGING = "imaging", _("imaging")
    HISTOLOGY = "histology", _("histology")
    CYTOLOGY = "cytology", _("cytology")
    CLINICAL = "clinical", _("clinical")
    OTHER = "other", _("other")


class Metastasis(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="metastases")
    site = models.CharField(_("site"), max_length=3)
    lesions = models.PositiveIntegerField(_("number of lesions"), null=True, blank=True)
    detected_on = models.DateField(_("detected on"))
    detected_on_precision = date_precision()
    timing = models.CharField(_("timing"), max_length=15, choices=MetastasisTiming.choices)
    established_by = models.CharField(
        _("established by"), max_length=15, choices=EstablishedBy.choices, blank=True
    )

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("metastasis", "detected_on")

    def __str__(self) -> str:
        return self.site


# --- case record II: therapy lines, tolerability, immune status, individual situation ---------


class LineSetting(models.TextChoices):
    NEOADJUVANT = "neoadjuvant", _("neoadjuvant")
    ADJUVANT = "adjuvant", _("adjuvant")
    PALLIATIVE = "palliative", _("palliative")
    MAINTENANCE = "maintenance", _("maintenance")
    DEFINITIVE = "definitive", _("definitive / curative without surgery")
    OTHER = "other", _("other")


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
    PCWG3 = "pcwg3", "PCWG3"
    CLINICAL = "clinical", _("clinical")
    NOT_EVALUABLE = "not_evaluable", _("not evaluable (e.g. adjuvant)")


# RECIST-family criteria describe solid tumours; they are not offered for haematological cases.
SOLID_TUMOUR_CRITERIA = {ResponseCriteria.RECIST, ResponseCriteria.IRECIST}


class TherapyLine(CaseRow):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="therapy_lines")
    number = models.PositiveSmallIntegerField(_("line number"))
    types = ArrayField(models.CharField(max_length=4), verbose_name=_("therapy types"))
    regimen = models.CharField(_("agents / regimen"), max_length=300, blank=True)
    intent = models.CharField(_("intent"), max_length=2, blank=True)
    setting = models.CharField(_("setting"), max_length=15, choices=LineSetting.choices)
    palliative_line = models.PositiveSmallIntegerField(
        _("palliative line number"), null=True, blank=True
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
        constraints = date_precision_checks("therapyline", "started_on", "ended_on")

    def __str__(self) -> str:
        return f"line {self.number}"


class CtcaeVersion(models.TextChoices):
    V5 = "5.0", "CTCAE 5.0"
    V6 = "6.0", "CTCAE 6.0"


class AdverseEvent(CaseRow):
    line = models.ForeignKey(
        TherapyLine,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("therapy line"),
    )
    term = models.CharField(_("term"), max_length=200)
    ctcae_version = models.CharField(_("CTCAE version"), max_length=3, choices=CtcaeVersion.choices)
    grade = models.PositiveSmallIntegerField(_("grade"), choices=[(g, str(g)) for g in range(1, 6)])
    attributed_agent = models.CharField(_("attributed agent"), max_length=200, blank=True)
    led_to_stop = models.BooleanField(_("led to stopping the therapy"), default=False)
    dose_reduced = models.BooleanField(_("dose reduced"), default=False)
    resolved = models.BooleanField(_("resolved"), default=False)
    onset_on = models.DateField(_("onset"), null=True, blank=True)
    onset_on_precision = date_precision()

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("adverseevent", "onset_on") + [
            models.CheckConstraint(
                condition=models.Q(grade__gte=1, grade__lte=5), name="ae_grade_1_to_5"
            )
        ]

    def __str__(self) -> str:
        return f"{self.term} G{self.grade}"


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


class ImmuneFinding(CaseRow):
    """One dated set of immune-relevant findings. Every item is optional; "not tested" is
    recorded explicitly and differs from an empty field. No score, ratio or verdict."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="immune_findings")
    assessed_on = models.DateField(_("date"))
    assessed_on_precision = date_precision()
    leukocytes = models.DecimalField(
        _("leukocytes (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    neutrophils = models.DecimalField(
        _("neutrophils (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    neutrophils_not_tested = models.BooleanField(_("neutrophils not tested"), default=False)
    lymphocytes = models.DecimalField(
        _("lymphocytes (10⁹/L)"), max_digits=8, decimal_places=3, null=True, blank=True
    )
    lymphocytes_not_tested = models.BooleanField(_("lymphocytes not tested"), default=False)
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
    transplant_gvhd = models.CharField(_("transplant / GvHD"), max_length=200, blank=True)
    asplenia = models.CharField(_("asplenia"), max_length=12, choices=YesNo.choices, blank=True)
    autoimmune_disease = models.CharField(_("autoimmune disease"), max_length=200, blank=True)
    infections_12m = models.PositiveSmallIntegerField(
        _("infections in the last 12 months"), null=True, blank=True
    )
    infections_hospitalised = models.PositiveSmallIntegerField(
        _("of which hospitalised"), null=True, blank=True
    )
    vaccinations = models.CharField(_("vaccinations (with dates)"), max_length=500, blank=True)
    comment = models.TextField(_("physician's comment"), blank=True)

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("immunefinding", "assessed_on", "steroid_since")

    def __str__(self) -> str:
        return str(self.assessed_on)


class ImmuneAdverseEvent(CaseRow):
    """A prior immune-related adverse event, as the physician recorded it."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="immune_events")
    organ = models.CharField(_("organ"), max_length=100)
    grade = models.PositiveSmallIntegerField(_("grade"), choices=[(g, str(g)) for g in range(1, 6)])
    treatment = models.CharField(_("treatment"), max_length=200, blank=True)
    resolved = models.BooleanField(_("resolved"), default=False)
    rechallenged = models.BooleanField(_("rechallenged"), default=False)
    occurred_on = models.DateField(_("date"), null=True, blank=True)
    occurred_on_precision = date_precision()

    class Meta(CaseRow.Meta):
        constraints = date_precision_checks("immuneadverseevent", "occurred_on")

    def __str__(self) -> str:
        return self.organ


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
        "target_board",
        "board_type",
        "board_date",
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
    target_board = models.CharField(_("tumour board"), max_length=200)
    board_type = models.CharField(_("board type"), max_length=10)
    board_date = models.DateField(_("preferred board date"), null=True, blank=True)
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
    reason = models.TextField(_("reason for the new version"), blank=True)
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
