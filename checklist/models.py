"""The domain's nouns. Every clinical, catalogue and membership row carries `practice_id` and is
audited by database triggers from its first migration (see audit.py and PracticeScoped)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pgtrigger
from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class Practice(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

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


class PracticeScopedQuerySet(models.QuerySet):
    def for_practice(self, practice: Practice | int) -> PracticeScopedQuerySet:
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


class CaseQuerySet(PracticeScopedQuerySet):
    def for_list(self) -> CaseQuerySet:
        return self.order_by("label")


class Case(PracticeScoped):
    """The aggregate. `version` is bumped by every change to the case or any of its rows."""

    label = models.CharField(_("pseudonymous label"), max_length=64)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )

    objects = CaseQuerySet.as_manager()  # type: ignore[misc]  # a narrower queryset

    class Meta(PracticeScoped.Meta):
        constraints = [
            models.UniqueConstraint(fields=["practice", "label"], name="case_label_unique"),
        ]

    def __str__(self) -> str:
        return self.label


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
    actor_id = models.BigIntegerField(null=True)
    actor_name = models.CharField(max_length=150, blank=True, null=True)  # noqa: DJ001
    path = models.CharField(max_length=500, blank=True, null=True)  # noqa: DJ001
    request_id = models.CharField(max_length=64, blank=True, null=True)  # noqa: DJ001
    old_values = models.JSONField(null=True)
    new_values = models.JSONField(null=True)
    detail = models.JSONField(null=True)

    class Meta:
        indexes = [
            # The trail is appended in time order: a BRIN index serves date ranges at almost no
            # cost per insert.
            BrinIndex(fields=["ts"], name="audit_ts_brin"),
            models.Index(fields=["practice_id", "table_name", "row_id"], name="audit_row"),
        ]

    def __str__(self) -> str:
        return f"{self.practice_id}#{self.seq} {self.kind} {self.op}"


def user_display(user: User) -> str:
    return user.get_full_name() or user.get_username()


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
