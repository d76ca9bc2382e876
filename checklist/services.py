"""All writes. Keyword-only, one transaction each; views never save rows themselves."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from checklist.models import Membership, Practice

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
