"""All writes. Keyword-only, one transaction each; views never save rows themselves."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from checklist.models import (
    Case,
    CaseRow,
    Membership,
    Metastasis,
    MetastasisStatus,
    Practice,
    TherapyLine,
)

CaseRowModel = TypeVar("CaseRowModel", bound=CaseRow)

User = get_user_model()


@transaction.atomic
def account_create(
    *,
    practice: Practice,
    username: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
) -> Membership:
    """A new user with no usable password yet: the admin hands over a set-password link."""
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    user.set_unusable_password()
    user.save()
    return Membership.objects.create(practice=practice, user=user, role=role, active=True)


@transaction.atomic
def membership_update(
    *, membership: Membership, role: str, active: bool, acting_membership: Membership
) -> Membership:
    """Sets role and active flag. Accounts are deactivated, never deleted, so audit actors stay
    resolvable; an admin cannot remove the practice's last active admin (themselves included)."""
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    removes_admin = (
        locked.is_admin and locked.active and (role != locked.PRACTICE_ADMIN or not active)
    )
    if removes_admin:
        other_admins = (
            Membership.objects.filter(
                practice_id=locked.practice_id, role=Membership.PRACTICE_ADMIN, active=True
            )
            .exclude(pk=locked.pk)
            .exists()
        )
        if not other_admins:
            raise ValidationError(_("The practice needs at least one active practice admin."))
    locked.role = role
    locked.active = active
    locked.save(update_fields=["role", "active"])
    return locked


def practice_create(*, name: str, **kwargs: Any) -> Practice:
    return Practice.objects.create(name=name, **kwargs)


def user_is_usable(user: AbstractBaseUser) -> bool:
    return user.has_usable_password()


# --- the case aggregate ----------------------------------------------------------------------


class StaleVersion(Exception):
    """The case changed since the form was opened; nothing was saved."""

    def __init__(self, case: Case, expected: int) -> None:
        super().__init__(f"case {case.pk} is at version {case.version}, form had {expected}")
        self.case = case
        self.expected = expected


def _lock_case(case: Case, expected_version: int | None) -> Case:
    """Locks the case row for this transaction and checks the form's version against it."""
    locked = Case.objects.select_for_update().get(pk=case.pk, practice_id=case.practice_id)
    if expected_version is not None and locked.version != expected_version:
        raise StaleVersion(locked, expected_version)
    return locked


def _bump(case: Case, acting_user: Any) -> None:
    case.version += 1
    case.updated_by = acting_user
    case.save(update_fields=["version", "updated_by", "updated_at"])


def _check_metastasis_rows_allowed(case: Case) -> None:
    if case.metastasis_status in (MetastasisStatus.NONE_KNOWN, MetastasisStatus.NOT_APPLICABLE):
        raise ValidationError(
            _(
                "Metastasis rows cannot be recorded while the metastasis status says “%(status)s”."
                " Change the status first."
            )
            % {"status": case.get_metastasis_status_display()}
        )


@transaction.atomic
def case_create(*, practice: Practice, data: dict[str, Any], acting_user: Any) -> Case:
    if Case.objects.for_practice(practice).filter(label=data["label"]).exists():
        raise ValidationError({"label": _("This label is already used in the practice.")})
    return Case.objects.create(
        practice=practice, created_by=acting_user, updated_by=acting_user, **data
    )


CASE_HEADER_FIELDS = [
    "label",
    "year_of_birth",
    "sex",
    "situation",
    "last_restaging_on",
    "last_restaging_method",
    "unknown_primary",
    "deceased_on",
]
METASTASIS_STATUS_FIELDS = [
    "metastasis_status",
    "metastasis_assessed_on",
    "metastasis_assessment_method",
]


@transaction.atomic
def case_update(
    *, case: Case, data: dict[str, Any], acting_user: Any, expected_version: int | None
) -> Case:
    """Header fields and the metastasis status; cross-row rules are checked on the locked row."""
    locked = _lock_case(case, expected_version)
    if "label" in data and data["label"] != locked.label:
        taken = Case.objects.for_practice(locked.practice_id).filter(label=data["label"])
        if taken.exclude(pk=locked.pk).exists():
            raise ValidationError({"label": _("This label is already used in the practice.")})
    for name, value in data.items():
        setattr(locked, name, value)
    if "metastasis_status" in data:
        has_rows = Metastasis.objects.filter(case=locked).exists()
        if has_rows and data["metastasis_status"] in (
            MetastasisStatus.NONE_KNOWN,
            MetastasisStatus.NOT_APPLICABLE,
        ):
            raise ValidationError(
                {
                    "metastasis_status": _(
                        "Metastasis rows are recorded for this case; delete them before"
                        " choosing this status."
                    )
                }
            )
    if data.get("no_prior_therapy") and TherapyLine.objects.filter(case=locked).exists():
        raise ValidationError(
            {
                "no_prior_therapy": _(
                    "Therapy lines are recorded for this case; delete them before stating"
                    " that there was no prior therapy."
                )
            }
        )
    locked.version += 1
    locked.updated_by = acting_user
    locked.save()
    return locked


@transaction.atomic
def case_row_save(
    *, case: Case, row: CaseRowModel, acting_user: Any, expected_version: int | None
) -> CaseRowModel:
    """Creates or updates one row of the case (tumour, staging record, biomarker, ...)."""
    locked = _lock_case(case, expected_version)
    if isinstance(row, Metastasis):
        _check_metastasis_rows_allowed(locked)
    if isinstance(row, TherapyLine) and locked.no_prior_therapy:
        raise ValidationError(
            _(
                "This case states “no prior tumour-specific therapy”. Withdraw that statement"
                " before recording therapy lines."
            )
        )
    row.case = locked
    row.practice_id = locked.practice_id
    row.save()
    _bump(locked, acting_user)
    return row


@transaction.atomic
def case_row_delete(
    *, case: Case, row: CaseRowModel, acting_user: Any, expected_version: int | None
) -> None:
    locked = _lock_case(case, expected_version)
    type(row).objects.filter(pk=row.pk, case=locked).delete()
    _bump(locked, acting_user)
