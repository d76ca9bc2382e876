"""All writes. Keyword-only, one transaction each; views never save rows themselves.

Each service is wrapped in `audit.atomic` rather than `transaction.atomic`: the same
transaction, which first tells the audit triggers who acts (for this transaction only)."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.utils import formats, timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from checklist import audit, sessions
from checklist.models import (
    AccountProfile,
    AdverseEvent,
    AeGrade,
    AgendaItem,
    AgendaStatus,
    Attendance,
    AuditVerification,
    Biomarker,
    Board,
    BoardMeeting,
    BoardNote,
    BoardNoteVersion,
    BoardOutcome,
    Case,
    CaseRow,
    CatalogueVersion,
    Category,
    Checklist,
    ChecklistItem,
    CodeMapping,
    Comorbidity,
    FhirImportPreview,
    GenomicVariant,
    ImmuneFinding,
    ItemStatus,
    Membership,
    Metastasis,
    MetastasisStatus,
    NoteState,
    OutcomeDraft,
    PerformanceStatus,
    Practice,
    StagingRecord,
    SubmissionToken,
    TherapyLine,
    Tumour,
    user_display,
)
from checklist.notes import add_signature, build_snapshot, missing_for_signing, snapshot_hash
from checklist.record import CaseRecord

CaseRowModel = TypeVar("CaseRowModel", bound=CaseRow)

User = get_user_model()


@audit.atomic
def account_create(
    *,
    practice: Practice,
    username: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    title: str = "",
) -> Membership:
    """A new user with no usable password yet: the admin hands over a set-password link."""
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    user.set_unusable_password()
    user.save()
    membership = Membership.objects.create(practice=practice, user=user, role=role, active=True)
    if title.strip():
        account_set_title(user=user, title=title)
    return membership


@audit.atomic
def account_set_title(*, user: Any, title: str) -> AccountProfile:
    """Sets the title shown with the user's name (by the user, or by a practice admin). The
    profile's own trigger records the change in the chain of each of the user's practices."""
    clean = title.strip()
    profile = AccountProfile.objects.select_for_update(no_key=True).filter(user=user).first()
    if profile is None:
        profile = AccountProfile(user=user, title=clean)
        if clean:  # no row for an empty title that was never set
            profile.save()
    elif profile.title != clean:
        profile.title = clean
        profile.save(update_fields=["title"])
    # The user object the caller holds names the person with the new title from now on.
    user.account_profile = profile
    return profile


@audit.atomic
def membership_update(
    *, membership: Membership, role: str, active: bool, acting_membership: Membership
) -> Membership:
    """Sets role and active flag. Accounts are deactivated, never deleted, so audit actors stay
    resolvable; an admin cannot remove the practice's last active admin (themselves included)."""
    locked = Membership.objects.select_for_update(no_key=True).get(pk=membership.pk)
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
    deactivated = locked.active and not active
    locked.role = role
    locked.active = active
    locked.save(update_fields=["role", "active"])
    if deactivated:
        # Signed in elsewhere, they would keep working until a timeout: end every session now.
        sessions.end_user_sessions(locked.user_id)
    return locked


@audit.atomic
def practice_create(*, name: str, **kwargs: Any) -> Practice:
    """A new practice with its own copy of the shipped catalogue."""
    practice = Practice.objects.create(name=name, **kwargs)
    catalogue_seed(practice=practice)
    return practice


# --- one-time submissions ---------------------------------------------------------------------

# A create identical to one the same user saved on the same case this recently asks first.
DUPLICATE_WINDOW = timedelta(minutes=10)
PURGE_BATCH = 100


class AlreadySaved(Exception):
    """The form's token was used by an earlier POST that saved; nothing was saved again."""

    def __init__(self, submission: SubmissionToken) -> None:
        super().__init__(f"submission {submission.pk} was applied already")
        self.submission = submission


class PossibleDuplicate(Exception):
    """The same user saved the same entry a few minutes ago; nothing was saved. The form is
    sent again with a confirmation to save it all the same."""

    def __init__(self, existing: Any, saved_at: datetime, changed_since: bool = False) -> None:
        super().__init__(f"identical to {type(existing).__name__} {existing.pk}")
        self.existing = existing
        self.saved_at = saved_at
        self.changed_since = changed_since  # an edit: the row was changed after that save


def claim_submission(
    *, token: str | None, user: Any, kind: str, scope_id: int | None
) -> uuid.UUID | None:
    """Claims a form's one-time token inside the caller's transaction, so that the token is
    used exactly when the save commits. A second POST with the token raises `AlreadySaved`; a
    concurrent one waits on the unique key until the first commits (or rolls back, then it
    saves). A form without a token is recorded under a fresh id, so that the duplicate checks
    see its save. Expired tokens are purged here, up to `PURGE_BATCH` per claim, skipping rows
    another transaction holds. Returns the id to complete with `_record_submission`."""
    if user is None:  # seeding and commands: nobody to answer
        return None
    if token:
        try:
            key = SubmissionToken.read(token, user)
        except ValueError:
            raise ValidationError(
                _(
                    "This form was opened more than a day ago or was changed on the way;"
                    " check the entry and save again."
                )
            ) from None
    else:
        key = uuid.uuid4()
    now = timezone.now()
    table = connection.ops.quote_name(SubmissionToken._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH purged AS (
                DELETE FROM {table} WHERE token IN (
                    SELECT token FROM {table} WHERE created_at < %s
                    ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED))
            INSERT INTO {table} (token, user_id, created_at, kind, scope_id, digest)
            VALUES (%s, %s, %s, %s, %s, '')
            ON CONFLICT (token) DO NOTHING
            RETURNING token
            """,
            [now - SubmissionToken.LIFETIME, PURGE_BATCH, key, user.pk, now, kind, scope_id],
        )
        claimed = cursor.fetchone()
    if claimed is None:
        raise AlreadySaved(SubmissionToken.objects.get(pk=key))
    return key


def submission_applied(*, token: str | None, user: Any) -> AlreadySaved | None:
    """`AlreadySaved` for a token that has saved already, else None. Views ask before they
    validate the form, whose checks (a unique label, a free line number) would now fail on the
    very entry the token saved."""
    if not token or user is None:
        return None
    try:
        key = SubmissionToken.read(token, user)
    except ValueError:
        return None
    submission = SubmissionToken.objects.filter(pk=key).first()
    return AlreadySaved(submission) if submission else None


def _record_submission(
    key: uuid.UUID | None, *, object_id: int, revision: int | None = None, digest: str = ""
) -> None:
    if key is not None:
        SubmissionToken.objects.filter(pk=key).update(
            object_id=object_id, revision=revision, digest=digest
        )


def _recent_submissions(*, user: Any, kind: str) -> Any:
    since = timezone.now() - DUPLICATE_WINDOW
    return SubmissionToken.objects.filter(
        user=user, kind=kind, created_at__gte=since, object_id__isnull=False
    )


def _digest(data: dict[str, Any]) -> str:
    """A keyed hash of submitted values: equal values, equal digest; the values themselves are
    not kept in the token table."""
    text = json.dumps(data, sort_keys=True, default=str)
    return salted_hmac(SubmissionToken.SALT, text, algorithm="sha256").hexdigest()


def _same_values(row: Any, other: Any) -> bool:
    """The same field values, but for the row's id, case and practice."""
    return all(
        getattr(row, f.attname) == getattr(other, f.attname)
        for f in type(row)._meta.concrete_fields
        if f.name not in ("id", "case", "practice")
    )


def _identical_row_saved(*, row: CaseRow, case: Case, user: Any) -> PossibleDuplicate | None:
    """A row of the same kind with the same values that `user` saved on `case` within the
    duplicate window and that still reads so (one query)."""
    recent = _recent_submissions(user=user, kind=type(row)._meta.model_name or "").filter(
        scope_id=case.pk
    )
    recent_rows = (
        type(row)
        .objects.filter(case=case, pk__in=recent.values("object_id"))
        .annotate(
            saved_at=Subquery(
                recent.filter(object_id=OuterRef("pk"))
                .order_by("-created_at")
                .values("created_at")[:1]
            )
        )
        .order_by("-saved_at")
    )
    for other in recent_rows:
        if _same_values(row, other):
            return PossibleDuplicate(other, other.saved_at)
    return None


# --- the case aggregate ----------------------------------------------------------------------


class StaleVersion(Exception):
    """The case changed since the form was opened; nothing was saved."""

    def __init__(self, case: Case, expected: int) -> None:
        super().__init__(f"case {case.pk} is at version {case.version}, form had {expected}")
        self.case = case
        self.expected = expected


def _lock_case(case: Case, expected_version: int | None) -> Case:
    """Locks the case row for this transaction and checks the form's version against it.

    Every lock here is FOR NO KEY UPDATE (`no_key=True`): it serialises the writers of a row
    but lets a transaction that already holds the audit chain's lock check a foreign key to
    the row at its commit (key share). FOR UPDATE would deadlock with it
    (tests/test_locking.py)."""
    locked = Case.objects.select_for_update(no_key=True).get(
        pk=case.pk, practice_id=case.practice_id
    )
    if expected_version is not None and locked.version != expected_version:
        raise StaleVersion(locked, expected_version)
    return locked


def _bump(case: Case, acting_user: Any, *changed: str) -> None:
    case.version += 1
    case.updated_by = acting_user
    case.save(update_fields=["version", "updated_by", "updated_at", *changed])


def _check_metastasis_rows_allowed(case: Case) -> None:
    if case.metastasis_status in (MetastasisStatus.NONE_KNOWN, MetastasisStatus.NOT_APPLICABLE):
        raise ValidationError(
            _(
                "Metastasis rows cannot be recorded while the metastasis status says “%(status)s”."
                " Change the status first."
            )
            % {"status": case.get_metastasis_status_display()}
        )


@audit.atomic
def case_create(
    *, practice: Practice, data: dict[str, Any], acting_user: Any, token: str | None = None
) -> Case:
    key = claim_submission(token=token, user=acting_user, kind="case", scope_id=practice.pk)
    if Case.objects.for_practice(practice).filter(label=data["label"]).exists():
        raise ValidationError({"label": _("This label is already used in the practice.")})
    case = Case.objects.create(
        practice=practice, created_by=acting_user, updated_by=acting_user, **data
    )
    _record_submission(key, object_id=case.pk)
    return case


@audit.atomic
def case_update(
    *, case: Case, data: dict[str, Any], acting_user: Any, expected_version: int | None
) -> Case:
    """Header fields and the metastasis status; cross-row rules are checked on the locked row."""
    locked = _lock_case(case, expected_version)
    if "label" in data and data["label"] != locked.label:
        taken = Case.objects.for_practice(locked.practice_id).filter(label=data["label"])
        if taken.exclude(pk=locked.pk).exists():
            raise ValidationError({"label": _("This label is already used in the practice.")})
    # Removing the date of death while a grade 5 event (death) is recorded would leave the
    # grade without its death; asked only when a recorded date is being removed.
    removes_death = "deceased_on" in data and not data["deceased_on"] and locked.deceased_on
    for name, value in data.items():
        setattr(locked, name, value)
    if data.get("metastasis_status") in (
        MetastasisStatus.NONE_KNOWN,
        MetastasisStatus.NOT_APPLICABLE,
    ):
        rows = Metastasis.objects.filter(case=locked).count()
        if rows:
            status = MetastasisStatus(data["metastasis_status"]).label
            raise ValidationError(
                {
                    "metastasis_status": ngettext(
                        "%(count)s metastasis row is recorded for this case. Remove it first"
                        " (Delete beside the row), then set “%(status)s”.",
                        "%(count)s metastasis rows are recorded for this case. Remove them first"
                        " (Delete beside each row), then set “%(status)s”.",
                        rows,
                    )
                    % {"count": rows, "status": status}
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
    if removes_death and AdverseEvent.objects.filter(case=locked, grade=AeGrade.G5).exists():
        raise ValidationError(
            {
                "deceased_on": _(
                    "A grade 5 adverse event (death) is recorded for this case; change its"
                    " grade before removing the date of death."
                )
            }
        )
    locked.version += 1
    locked.updated_by = acting_user
    locked.save()
    return locked


@audit.atomic
def case_row_save(
    *,
    case: Case,
    row: CaseRowModel,
    acting_user: Any,
    expected_version: int | None,
    token: str | None = None,
    confirm_duplicate: bool = False,
) -> CaseRowModel:
    """Creates or updates one row of the case (tumour, staging record, biomarker, ...).

    A create claims the form's one-time token (`AlreadySaved` on a second POST) and, unless
    `confirm_duplicate`, raises `PossibleDuplicate` when the same user saved a row of the same
    kind with the same values on the case within `DUPLICATE_WINDOW`. A new metastasis row
    sets an empty or "not assessed" metastasis status to "present" (a change of the case row,
    audited as such); `row.case` is the saved case, so the caller can tell."""
    creating = row.pk is None
    key = None
    if creating:
        kind = type(row)._meta.model_name or ""
        key = claim_submission(token=token, user=acting_user, kind=kind, scope_id=case.pk)
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
    if isinstance(row, AdverseEvent) and row.grade == AeGrade.G5 and not locked.deceased_on:
        raise ValidationError(_("Grade 5 means death: record the date of death on the case first."))
    if creating and acting_user is not None and not confirm_duplicate:
        duplicate = _identical_row_saved(row=row, case=locked, user=acting_user)
        if duplicate is not None:
            raise duplicate
    row.case = locked
    row.practice_id = locked.practice_id
    row.save()
    changed: list[str] = []
    if creating and isinstance(row, Metastasis) and _metastasis_row_sets_status(locked):
        locked.metastasis_status = MetastasisStatus.PRESENT
        changed.append("metastasis_status")
    _bump(locked, acting_user, *changed)
    _record_submission(key, object_id=row.pk)
    return row


def _metastasis_row_sets_status(case: Case) -> bool:
    """A recorded metastasis states that metastases are present: an empty status or "not
    assessed" follows the row. "None known" and "not applicable" refuse the row instead
    (`_check_metastasis_rows_allowed`); "present" stays."""
    return case.metastasis_status in ("", MetastasisStatus.NOT_ASSESSED)


@audit.atomic
def case_row_delete(
    *, case: Case, row: CaseRowModel, acting_user: Any, expected_version: int | None
) -> None:
    locked = _lock_case(case, expected_version)
    type(row).objects.filter(pk=row.pk, case=locked).delete()
    _bump(locked, acting_user)


# --- the catalogue --------------------------------------------------------------------------

SHIPPED_CATALOGUE = Path(settings.BASE_DIR) / "fixtures" / "catalogue.json"


def shipped_catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SHIPPED_CATALOGUE.read_text(encoding="utf-8"))
    return data


def _version_from_shipped(
    *, practice_id: int, number: int, data: dict[str, Any]
) -> CatalogueVersion:
    groups = {g["code"]: g for g in data["groups"]}
    version = CatalogueVersion.objects.create(
        practice_id=practice_id,
        number=number,
        based_on_shipped=data["release"],
        mechanisms=data["mechanisms"],
        orientation={
            "intro_en": data["orientation_intro_en"],
            "intro_de": data["orientation_intro_de"],
            "factors": data["orientation"],
        },
        goals=data["goals"],
        disclaimer_en=data["disclaimer"]["en"],
        disclaimer_de=data["disclaimer"]["de"],
        source_title=data["source"]["title"],
    )
    Category.objects.bulk_create(
        [
            Category(
                practice_id=practice_id,
                version=version,
                code=c["code"],
                position=(index + 1) * 10,
                group_en=groups[c["group"]]["name_en"],
                group_de=groups[c["group"]]["name_de"],
                name_en=c["name_en"],
                name_de=c["name_de"],
                description_en=c["description_en"],
                description_de=c["description_de"],
                mechanisms=c["mechanisms"],
                source_section=c["source_section"],
                source_quote=c["source_quote"],
            )
            for index, c in enumerate(data["categories"])
        ]
    )
    return version


@audit.atomic
def catalogue_seed(*, practice: Practice, acting_user: Any = None) -> CatalogueVersion:
    """The practice's own copy of the shipped catalogue, published as version 1. Idempotent."""
    existing = CatalogueVersion.objects.filter(practice=practice).order_by("number").first()
    if existing:
        return existing
    version = _version_from_shipped(practice_id=practice.pk, number=1, data=shipped_catalogue())
    version.published_at = timezone.now()
    version.published_by = acting_user
    version.change_note = "Shipped catalogue, drawn from the practice's source text."
    version.save()
    return version


def _next_number(practice_id: int) -> int:
    last = CatalogueVersion.objects.filter(practice_id=practice_id).order_by("-number").first()
    return (last.number if last else 0) + 1


def _open_draft(practice_id: int) -> CatalogueVersion | None:
    return CatalogueVersion.objects.filter(
        practice_id=practice_id, published_at__isnull=True
    ).first()


@audit.atomic
def catalogue_draft_create(*, practice: Practice) -> CatalogueVersion:
    """A draft copied from the newest published version (one draft at a time)."""
    _lock_practice_catalogue(practice.pk)
    draft = _open_draft(practice.pk)
    if draft:
        return draft
    source = CatalogueVersion.objects.for_practice(practice).newest_published()
    if source is None:
        raise ValidationError(_("The practice has no published catalogue to start from."))
    draft = CatalogueVersion.objects.create(
        practice=practice,
        number=_next_number(practice.pk),
        based_on_shipped=source.based_on_shipped,
        mechanisms=source.mechanisms,
        orientation=source.orientation,
        goals=source.goals,
        disclaimer_en=source.disclaimer_en,
        disclaimer_de=source.disclaimer_de,
        source_title=source.source_title,
    )
    categories = list(source.categories.all())
    for category in categories:
        category.pk = None
        category.version = draft
    Category.objects.bulk_create(categories)
    return draft


@audit.atomic
def catalogue_import_shipped(*, practice: Practice) -> CatalogueVersion:
    """The shipped catalogue as a new draft, to be compared with the current version."""
    _lock_practice_catalogue(practice.pk)
    if _open_draft(practice.pk):
        raise ValidationError(_("Publish or discard the open draft first."))
    return _version_from_shipped(
        practice_id=practice.pk, number=_next_number(practice.pk), data=shipped_catalogue()
    )


# The optional catalogue template beside the practice's source text: the therapy types of the
# MII oncology module, labels only (built by fixtures/build_catalogue_templates.py).
MII_TEMPLATE = Path(settings.BASE_DIR) / "fixtures" / "catalogue_mii_therapy_types.json"


def mii_template() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MII_TEMPLATE.read_text(encoding="utf-8"))
    return data


def _template_category(
    *, version: CatalogueVersion, template: dict[str, Any], entry: dict[str, Any], position: int
) -> Category:
    # Labels only: the code system says what a therapy type is called, never when it applies.
    return Category(
        practice_id=version.practice_id,
        version=version,
        code=entry["code"],
        position=position,
        group_en=template["group"]["name_en"],
        group_de=template["group"]["name_de"],
        name_en=entry["name_en"],
        name_de=entry["name_de"],
        description_en="",
        description_de="",
        mechanisms=[],
        source_section=entry["source_section"],
        source_quote=entry["source_quote"],
    )


@audit.atomic
def catalogue_import_template(*, practice: Practice) -> CatalogueVersion:
    """The MII therapy-type template as a new draft, to be published as it is or edited. The
    orientation, goals and disclaimer stay those of the practice's source (the code system
    has none); the categories are the template's alone."""
    _lock_practice_catalogue(practice.pk)
    if _open_draft(practice.pk):
        raise ValidationError(_("Publish or discard the open draft first."))
    current = CatalogueVersion.objects.for_practice(practice).newest_published()
    if current is None:
        raise ValidationError(_("The practice has no published catalogue to start from."))
    template = mii_template()
    draft = CatalogueVersion.objects.create(
        practice=practice,
        number=_next_number(practice.pk),
        based_on_shipped=template["release"],
        mechanisms=current.mechanisms,
        orientation=current.orientation,
        goals=current.goals,
        disclaimer_en=current.disclaimer_en,
        disclaimer_de=current.disclaimer_de,
        source_title=template["source"]["title"],
    )
    Category.objects.bulk_create(
        [
            _template_category(
                version=draft, template=template, entry=entry, position=(index + 1) * 10
            )
            for index, entry in enumerate(template["categories"])
        ]
    )
    return draft


def template_categories_missing(version: CatalogueVersion) -> list[dict[str, Any]]:
    """The template's categories whose code the version does not hold yet, in its order."""
    held = set(version.categories.values_list("code", flat=True))
    return [c for c in mii_template()["categories"] if c["code"] not in held]


@audit.atomic
def catalogue_merge_template(*, version: CatalogueVersion, codes: list[str]) -> list[Category]:
    """Adds the chosen categories of the MII template to a draft: at its end, in the template's
    order (not the order they were chosen in). The admin reorders them as any other."""
    version = _draft_for_edit(version)
    template = mii_template()
    known = {c["code"] for c in template["categories"]}
    unknown = sorted(set(codes) - known)
    if unknown:
        raise ValidationError(
            _("Not a category of the template: %(codes)s") % {"codes": ", ".join(unknown)}
        )
    held = set(version.categories.values_list("code", flat=True))
    clash = sorted(set(codes) & held)
    if clash:
        raise ValidationError(
            _("The draft already holds these codes: %(codes)s") % {"codes": ", ".join(clash)}
        )
    last = version.categories.order_by("-position").first()
    position = last.position if last else 0
    added = []
    for entry in template["categories"]:
        if entry["code"] in codes:
            position += 10
            added.append(
                _template_category(
                    version=version, template=template, entry=entry, position=position
                )
            )
    return Category.objects.bulk_create(added)


def _lock_practice_catalogue(practice_id: int) -> None:
    Practice.objects.select_for_update(no_key=True).filter(pk=practice_id).first()


def _draft_for_edit(category_or_version: Category | CatalogueVersion) -> CatalogueVersion:
    version = (
        category_or_version.version
        if isinstance(category_or_version, Category)
        else category_or_version
    )
    version = CatalogueVersion.objects.select_for_update(no_key=True).get(pk=version.pk)
    if not version.is_draft:
        raise ValidationError(_("A published version is never changed; start a draft."))
    return version


@audit.atomic
def category_save(
    *, category: Category, acting_user: Any = None, token: str | None = None
) -> Category:
    """Adds or rewords a category of a draft; an addition claims the form's one-time token."""
    key = None
    if category.pk is None:
        key = claim_submission(
            token=token, user=acting_user, kind="category", scope_id=category.version_id
        )
    version = _draft_for_edit(category)
    if not category.source_section.strip() or not category.source_quote.strip():
        raise ValidationError(_("Cite the source (section and sentence) for this category."))
    clash = Category.objects.filter(version=version, code=category.code)
    if clash.exclude(pk=category.pk).exists():
        raise ValidationError({"code": _("This code is already used in the version.")})
    if category.pk is None:
        last = version.categories.order_by("-position").first()
        category.position = (last.position if last else 0) + 10
        category.practice_id = version.practice_id
        category.version = version
    category.save()
    _record_submission(key, object_id=category.pk)
    return category


@audit.atomic
def category_move(*, category: Category, up: bool) -> None:
    version = _draft_for_edit(category)
    ordered = list(version.categories.order_by("position"))
    index = next(i for i, c in enumerate(ordered) if c.pk == category.pk)
    other = index - 1 if up else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
        for position, item in enumerate(ordered, start=1):
            if item.position != position * 10:
                Category.objects.filter(pk=item.pk).update(position=position * 10)


@audit.atomic
def category_set_active(*, category: Category, active: bool) -> None:
    _draft_for_edit(category)
    Category.objects.filter(pk=category.pk).update(active=active)


@audit.atomic
def catalogue_publish(*, version: CatalogueVersion, change_note: str, acting_user: Any) -> None:
    version = _draft_for_edit(version)
    if not change_note.strip():
        raise ValidationError({"change_note": _("Say what changed in this version.")})
    if not version.categories.filter(active=True).exists():
        raise ValidationError(_("A catalogue needs at least one active category."))
    version.published_at = timezone.now()
    version.published_by = acting_user
    version.change_note = change_note.strip()
    version.save()


@audit.atomic
def catalogue_discard_draft(*, version: CatalogueVersion) -> None:
    version = _draft_for_edit(version)
    version.categories.all().delete()
    version.delete()


# --- the checklist --------------------------------------------------------------------------


class StaleItem(Exception):
    def __init__(self, item: ChecklistItem) -> None:
        super().__init__(f"item {item.pk} is at revision {item.revision}")
        self.item = item


@audit.atomic
def checklist_item_set(
    *,
    case: Case,
    version: CatalogueVersion,
    category: Category,
    status: str,
    note: str,
    acting_user: Any,
    expected_revision: int | None,
) -> ChecklistItem:
    """Sets a category's status and note on the case's checklist (created on first use, under
    the version the physician was shown). Each item carries its own revision against lost
    updates; the clinical record's version is not touched by working the checklist."""
    checklist, _created = Checklist.objects.select_for_update(no_key=True).get_or_create(
        case=case, defaults={"practice_id": case.practice_id, "version": version}
    )
    if checklist.version_id != version.pk or category.version_id != version.pk:
        raise ValidationError(
            _("The checklist is worked under version %(n)s; reload the page.")
            % {"n": checklist.version.number}
        )
    item, created = ChecklistItem.objects.select_for_update(no_key=True).get_or_create(
        checklist=checklist,
        category=category,
        defaults={"practice_id": case.practice_id, "case": case},
    )
    # expected_revision 0 means the physician saw no item yet; a first save by someone else
    # in the meantime makes that stale too.
    if not created and expected_revision is not None and item.revision != expected_revision:
        raise StaleItem(item)
    item.status = status
    item.note = note
    item.set_by = acting_user
    item.set_at = timezone.now()
    if not created:
        item.revision += 1
    item.save()
    return item


def category_text_key(category: Category) -> tuple[Any, ...]:
    return (category.code, *(getattr(category, f) for f in Category.TEXT_FIELDS))


@audit.atomic
def checklist_move(*, case: Case, to_version: CatalogueVersion, acting_user: Any) -> Checklist:
    """Moves the checklist to a newer version: unchanged categories keep status and note;
    changed ones start again as "not yet reviewed", with what they said before kept."""
    checklist = Checklist.objects.select_for_update(no_key=True).get(case=case)
    if to_version.is_draft or to_version.practice_id != case.practice_id:
        raise ValidationError(_("Only a published version of the practice can be used."))
    old_items = {item.category.code: item for item in checklist.items.select_related("category")}
    new_items = []
    for category in to_version.categories.all():
        old = old_items.get(category.code)
        item = ChecklistItem(
            practice_id=case.practice_id, case=case, checklist=checklist, category=category
        )
        if old and category_text_key(old.category) == category_text_key(category):
            item.status, item.note = old.status, old.note
            item.set_by_id, item.set_at = old.set_by_id, old.set_at
        elif old and old.status != ItemStatus.NOT_YET_REVIEWED:
            item.previous_status, item.previous_note = old.status, old.note
        new_items.append(item)
    checklist.items.all().delete()
    ChecklistItem.objects.bulk_create(new_items)
    checklist.version = to_version
    checklist.moved_at = timezone.now()
    checklist.save()
    return checklist


# --- tumour-board notes ----------------------------------------------------------------------


@audit.atomic
def note_create(
    *,
    case: Case,
    data: dict[str, Any],
    acting_user: Any,
    token: str | None = None,
    confirm_duplicate: bool = False,
) -> BoardNoteVersion:
    """A new note for the case. Claims the form's one-time token; a note with the same
    registration that this user created on the case within `DUPLICATE_WINDOW` raises
    `PossibleDuplicate` unless `confirm_duplicate`."""
    key = claim_submission(token=token, user=acting_user, kind="note", scope_id=case.pk)
    if key is not None and not confirm_duplicate:
        recent = _recent_submissions(user=acting_user, kind="note").filter(scope_id=case.pk)
        saved = dict(recent.values_list("object_id", "created_at"))
        firsts = BoardNoteVersion.objects.filter(case=case, number=1, note_id__in=list(saved))
        for first in firsts.order_by("-note_id"):
            if all(getattr(first, name) == value for name, value in data.items()):
                raise PossibleDuplicate(first, saved[first.note_id])
    note = BoardNote.objects.create(practice_id=case.practice_id, case=case, created_by=acting_user)
    version = BoardNoteVersion.objects.create(
        practice_id=case.practice_id,
        note=note,
        case=case,
        number=1,
        created_by=acting_user,
        **data,
    )
    _register_on_agenda(version, acting_user)
    _record_submission(key, object_id=note.pk)
    return version


def _lock_version(version: BoardNoteVersion) -> BoardNoteVersion:
    return BoardNoteVersion.objects.select_for_update(no_key=True).get(pk=version.pk)


def _check_revision(locked: BoardNoteVersion, expected_revision: int | None) -> None:
    if expected_revision is not None and locked.revision != expected_revision:
        raise ValidationError(
            _("The note was changed in the meantime; reload it and check the changes first.")
        )


@audit.atomic
def note_update(
    *,
    version: BoardNoteVersion,
    data: dict[str, Any],
    expected_revision: int | None = None,
    acting_user: Any = None,
    token: str | None = None,
    confirm_resubmit: bool = False,
) -> BoardNoteVersion:
    """Edits a draft (or a ready version, which returns to draft).

    Besides the revision check, a resubmit of values this user already applied is refused:
    after Back the edit page is fetched again (responses are not stored), so its form carries
    the current revision while the browser restores the typed text, and the revision check
    alone passes. If nothing changed since that save, `AlreadySaved` (nothing to do); if the
    note was changed after it, `PossibleDuplicate` with `changed_since` unless
    `confirm_resubmit`."""
    key = claim_submission(
        token=token, user=acting_user, kind="note_edit", scope_id=version.note_id
    )
    locked = _lock_version(version)
    if locked.state == NoteState.SIGNED:
        raise ValidationError(_("A signed version is never changed; amend it instead."))
    _check_revision(locked, expected_revision)
    digest = _digest(data)
    if key is not None and not confirm_resubmit:
        earlier = (
            _recent_submissions(user=acting_user, kind="note_edit")
            .filter(object_id=locked.pk, digest=digest)
            .order_by("-created_at")
            .first()
        )
        if earlier is not None and earlier.revision == locked.revision:
            raise AlreadySaved(earlier)
        if earlier is not None:
            raise PossibleDuplicate(locked, earlier.created_at, changed_since=True)
    registered = (locked.board_id, locked.board_date)
    for name, value in data.items():
        setattr(locked, name, value)
    locked.state = NoteState.DRAFT
    locked.ready_at = None
    locked.revision += 1
    locked.save()
    # Only a change of board or date moves the note on the agenda: a coordinator's move of an
    # unchanged registration stands.
    if (locked.board_id, locked.board_date) != registered:
        _register_on_agenda(locked, acting_user)
    _record_submission(key, object_id=locked.pk, revision=locked.revision, digest=digest)
    return locked


@audit.atomic
def note_mark_ready(*, version: BoardNoteVersion) -> BoardNoteVersion:
    locked = _lock_version(version)
    if locked.state != NoteState.DRAFT:
        raise ValidationError(_("Only a draft can be marked ready."))
    missing = missing_for_signing(locked, CaseRecord.load(locked.note.case))
    if missing:
        raise ValidationError(_("Missing: %(what)s.") % {"what": "; ".join(missing)})
    locked.state = NoteState.READY
    locked.ready_at = timezone.now()
    locked.save()
    return locked


@audit.atomic
def note_sign(
    *,
    version: BoardNoteVersion,
    acting_membership: Membership,
    language: str,
    expected_revision: int | None = None,
    expected_case_version: int | None = None,
) -> BoardNoteVersion:
    """Freezes everything the note shows into a snapshot with its SHA-256 and signs it.
    Only a physician of the practice signs; items still "not yet reviewed" are allowed. The
    view has asked for the physician's password. Signing the revision that is signed already
    (a double click, the back button, two requests at once: the row lock orders them) changes
    nothing and answers the signed version."""
    locked = _lock_version(version)
    if not acting_membership.is_physician or acting_membership.practice_id != locked.practice_id:
        raise ValidationError(_("Only a physician of the practice signs a board note."))
    if locked.state == NoteState.SIGNED:
        if expected_revision is None or expected_revision == locked.revision:
            return locked
        raise ValidationError(_("This version is signed already."))
    _check_revision(locked, expected_revision)
    # Lock the case so that the snapshot and the signing check see one consistent state of the
    # record, and refuse if the record changed since the physician looked at the note. The
    # snapshot is built first: it reads the record's facts in the note's language.
    case = Case.objects.select_for_update(no_key=True).get(pk=locked.note.case_id)
    record = CaseRecord.load(case)
    snapshot = build_snapshot(locked, language=language, record=record)
    missing = missing_for_signing(locked, record)
    if missing:
        raise ValidationError(_("Missing: %(what)s.") % {"what": "; ".join(missing)})
    if expected_case_version is not None and case.version != expected_case_version:
        raise ValidationError(
            _("The case record changed since you opened the note; check it and sign again.")
        )
    now = timezone.now()
    add_signature(
        snapshot,
        signed_by=user_display(acting_membership.user),
        signed_at=now.isoformat(timespec="seconds"),
    )
    locked.snapshot = snapshot
    locked.snapshot_hash = snapshot_hash(snapshot)
    locked.state = NoteState.SIGNED
    locked.signed_at = now
    locked.signed_by = acting_membership.user
    locked.save()
    return locked


@audit.atomic
def note_amend(*, note: BoardNote, reason: str, acting_user: Any) -> BoardNoteVersion:
    """A new version that supersedes the newest signed one; the signed row is not touched."""
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for the amendment.")})
    BoardNote.objects.select_for_update(no_key=True).get(pk=note.pk)
    latest = note.versions.order_by("-number").first()
    assert latest is not None
    if latest.state != NoteState.SIGNED:
        raise ValidationError(_("Only a signed version can be amended; edit the draft instead."))
    copy = {f: getattr(latest, f) for f in BoardNoteVersion.REGISTRATION_FIELDS}
    return BoardNoteVersion.objects.create(
        practice_id=note.practice_id,
        note=note,
        case_id=note.case_id,
        number=latest.number + 1,
        supersedes=latest,
        amendment_reason=reason.strip(),
        created_by=acting_user,
        **copy,
    )


@audit.atomic
def outcome_record(
    *,
    note: BoardNote,
    held_on: Any,
    attendees: str,
    measures: list[dict[str, str]],
    reason: str,
    acting_user: Any,
    token: str | None = None,
    follow_up_on: date | None = None,
    agenda_item: AgendaItem | None = None,
) -> BoardOutcome:
    """Records the board's outcome as a new version row; earlier rows are never updated.
    Claims the form's one-time token."""
    key = claim_submission(token=token, user=acting_user, kind="outcome", scope_id=note.pk)
    BoardNote.objects.select_for_update(no_key=True).get(pk=note.pk)
    if not note.versions.filter(state=NoteState.SIGNED).exists():
        raise ValidationError(_("Record the outcome after the note is signed."))
    last = note.outcomes.order_by("-number").first()
    if last and not reason.strip():
        raise ValidationError({"reason": _("Give the reason for the new version.")})
    outcome = BoardOutcome.objects.create(
        practice_id=note.practice_id,
        note=note,
        case_id=note.case_id,
        number=(last.number if last else 0) + 1,
        held_on=held_on,
        attendees=attendees,
        measures=measures,
        follow_up_on=follow_up_on,
        reason=reason.strip(),
        agenda_item=agenda_item,
        recorded_by=acting_user,
    )
    _record_submission(key, object_id=outcome.pk)
    return outcome


@audit.atomic
def case_set_immune_not_assessed(
    *, case: Case, value: bool, acting_user: Any, expected_version: int | None
) -> Case:
    return case_update(
        case=case,
        data={"immune_not_assessed": value},
        acting_user=acting_user,
        expected_version=expected_version,
    )


def audit_verify_practice(*, practice_id: int, ran_by: str = "") -> AuditVerification:
    """Verifies one practice's chain and keeps the result (shown to the practice's admins)."""
    result = audit.verify_chain(practice_id)
    return AuditVerification.objects.create(
        chain=practice_id,
        ran_by=ran_by[:150],
        ok=result.ok,
        events=result.events,
        head_seq=result.head_seq,
        broken_at=result.broken_at,
        reason=result.reason,
    )


# --- the second factor ---------------------------------------------------------------------
# django-otp's device tables carry no practice_id and no triggers: the views record access
# events for enrolment, removal and every failed code (`audit.OTP_*`).


@audit.atomic
def second_factor_pending_device(*, user: Any) -> Any:
    """The user's unconfirmed authenticator being enrolled, created on first use, so reloading
    the enrolment page keeps the key the user may already have scanned."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    return device


@audit.atomic
def second_factor_confirm(*, device: Any, count: int) -> list[str]:
    """Confirms an enrolled authenticator and issues `count` new one-time recovery codes
    (returned once, for showing once); any earlier devices of the user are replaced."""
    user = device.user
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    StaticDevice.objects.filter(user=user).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    recovery = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(count)]
    StaticToken.objects.bulk_create([StaticToken(device=recovery, token=c) for c in codes])
    return codes


@audit.atomic
def second_factor_remove(*, user: Any) -> int:
    """Removes all of the user's devices (a lost phone): they enrol again at their next login.
    Returns how many were removed."""
    removed = TOTPDevice.objects.filter(user=user).delete()[1].get("otp_totp.TOTPDevice", 0)
    removed += StaticDevice.objects.filter(user=user).delete()[1].get("otp_static.StaticDevice", 0)
    return removed


@audit.atomic
def practice_set_second_factor(*, practice: Practice, for_physicians: bool) -> Practice:
    """Whether the practice's physicians need a second factor (admins always do)."""
    practice = Practice.objects.select_for_update(no_key=True).get(pk=practice.pk)
    if practice.second_factor_for_physicians != for_physicians:
        practice.second_factor_for_physicians = for_physicians
        practice.save(update_fields=["second_factor_for_physicians"])
    return practice


# --- tumour-board meetings -------------------------------------------------------------------
# Writes to a meeting's agenda lock the meeting row, so that two coordinators (or a
# registration and a reorder) never interleave positions; writes to one case's decision lock
# its agenda item.

MEETINGS_AHEAD = 8


@audit.atomic
def board_save(*, practice: Practice, data: dict[str, Any], board: Board | None = None) -> Board:
    """Creates a board, or changes one (a retired board takes no new registrations)."""
    others = Board.objects.for_practice(practice).filter(name=data["name"])
    if board is not None:
        others = others.exclude(pk=board.pk)
    if others.exists():
        raise ValidationError({"name": _("The practice has a board of this name already.")})
    if board is None:
        return Board.objects.create(practice=practice, **data)
    locked = Board.objects.select_for_update(no_key=True).get(pk=board.pk, practice=practice)
    for name, value in data.items():
        setattr(locked, name, value)
    locked.save()
    return locked


def next_meeting_date(board: Board, after: date) -> date:
    """The first day after `after` that is the board's usual weekday."""
    return after + timedelta(days=(board.weekday - after.weekday() - 1) % 7 + 1)


def _meeting_on(board: Board, day: date, acting_user: Any) -> BoardMeeting:
    meeting, _created = BoardMeeting.objects.get_or_create(
        board=board,
        date=day,
        defaults={
            "practice_id": board.practice_id,
            "starts_at": board.starts_at,
            "created_by": acting_user,
        },
    )
    return meeting


@audit.atomic
def meeting_create(*, board: Board, day: date, acting_user: Any) -> BoardMeeting:
    """A board's meeting on `day` (on demand); the one there is if it exists."""
    Board.objects.select_for_update(no_key=True).get(pk=board.pk)
    return _meeting_on(board, day, acting_user)


@audit.atomic
def meetings_create_ahead(
    *, board: Board, acting_user: Any, count: int = MEETINGS_AHEAD
) -> list[BoardMeeting]:
    """The board's next `count` meetings on its usual weekday from today (those already there
    are kept as they are)."""
    Board.objects.select_for_update(no_key=True).get(pk=board.pk)
    if not board.active:
        raise ValidationError(_("A retired board has no new meetings."))
    day = next_meeting_date(board, timezone.localdate() - timedelta(days=1))
    meetings = []
    for _index in range(count):
        meetings.append(_meeting_on(board, day, acting_user))
        day += timedelta(days=7)
    return meetings


def _lock_meeting(meeting: BoardMeeting) -> BoardMeeting:
    return BoardMeeting.objects.select_for_update(no_key=True).get(pk=meeting.pk)


def _end_position(meeting: BoardMeeting) -> int:
    last = meeting.items.order_by("-position").values_list("position", flat=True).first()
    return (last or 0) + 1


def _register_on_agenda(version: BoardNoteVersion, acting_user: Any) -> None:
    """Puts the note on the agenda of the meeting its registration names (board and date), the
    meeting created on demand. A note still waiting on another meeting's agenda goes over to
    the new one; without a board or date it leaves the agenda it waits on. A closed
    registration refuses both."""
    waiting = list(
        AgendaItem.objects.select_for_update(no_key=True)
        .filter(note_id=version.note_id, status=AgendaStatus.PENDING)
        .select_related("meeting")
    )
    closed = _(
        "Registration for the meeting of %(board)s on %(date)s is closed; ask the board's"
        " coordinator."
    )
    for item in waiting:
        if item.meeting.registration_closed and (
            version.board_id != item.meeting.board_id or version.board_date != item.meeting.date
        ):
            raise ValidationError(
                closed
                % {"board": item.meeting.board.name, "date": formats.date_format(item.meeting.date)}
            )
    if version.board_id is None or version.board_date is None:
        for item in waiting:
            item.delete()
        return
    assert version.board is not None
    if version.board.practice_id != version.practice_id:
        raise ValidationError({"board": _("Choose one of the practice's boards.")})
    meeting = _lock_meeting(_meeting_on(version.board, version.board_date, acting_user))
    if AgendaItem.objects.filter(meeting=meeting, note_id=version.note_id).exists():
        return
    if meeting.registration_closed:
        raise ValidationError(
            closed % {"board": version.board.name, "date": formats.date_format(meeting.date)}
        )
    if waiting:
        item = waiting[0]
        item.meeting = meeting
        item.position = _end_position(meeting)
        item.save(update_fields=["meeting", "position"])
        return
    AgendaItem.objects.create(
        practice_id=version.practice_id,
        meeting=meeting,
        note_id=version.note_id,
        case_id=version.case_id,
        position=_end_position(meeting),
        registered_by=acting_user,
    )


@audit.atomic
def agenda_item_shift(*, item: AgendaItem, up: bool) -> None:
    """Moves a case one place up or down the agenda; the positions are renumbered 1..n in the
    order shown, so the coordinator's order is the only order there is."""
    meeting = _lock_meeting(item.meeting)
    items = list(meeting.items.order_by("position", "registered_at", "pk"))
    index = next(i for i, it in enumerate(items) if it.pk == item.pk)
    other = index - 1 if up else index + 1
    if 0 <= other < len(items):
        items[index], items[other] = items[other], items[index]
    changed = []
    for position, each in enumerate(items, start=1):
        if each.position != position:
            each.position = position
            changed.append(each)
    AgendaItem.objects.bulk_update(changed, ["position"])


@audit.atomic
def agenda_item_move(
    *, item: AgendaItem, to_meeting: BoardMeeting, reason: str, acting_user: Any
) -> AgendaItem:
    """The coordinator moves a case to another meeting, with the reason the physician sees on
    the note. Taken even when the other meeting's registration is closed (the coordinator
    closed it)."""
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for the move.")})
    source = _lock_meeting(item.meeting)
    target = _lock_meeting(to_meeting)
    locked = AgendaItem.objects.select_for_update(no_key=True).get(pk=item.pk)
    if locked.status != AgendaStatus.PENDING:
        raise ValidationError(_("Only a case still waiting on the agenda can be moved."))
    if target.pk == source.pk or target.practice_id != source.practice_id:
        raise ValidationError(_("Choose another meeting."))
    if AgendaItem.objects.filter(meeting=target, note_id=locked.note_id).exists():
        raise ValidationError(_("This case is on that meeting's agenda already."))
    locked.meeting = target
    locked.position = _end_position(target)
    locked.moved_from = source
    locked.move_reason = reason.strip()
    locked.moved_at = timezone.now()
    locked.moved_by = acting_user
    locked.save()
    return locked


@audit.atomic
def meeting_set_registration(*, meeting: BoardMeeting, closed: bool) -> BoardMeeting:
    locked = _lock_meeting(meeting)
    locked.registration_closed = closed
    locked.save(update_fields=["registration_closed"])
    return locked


@audit.atomic
def attendance_add(
    *, meeting: BoardMeeting, name: str, discipline: str, acting_user: Any
) -> Attendance:
    _lock_meeting(meeting)
    return Attendance.objects.create(
        practice_id=meeting.practice_id,
        meeting=meeting,
        name=name.strip(),
        discipline=discipline,
        recorded_by=acting_user,
    )


@audit.atomic
def attendance_remove(*, attendance: Attendance) -> None:
    _lock_meeting(attendance.meeting)
    attendance.delete()


class StaleDraft(Exception):
    """Someone else saved this decision draft since the form was shown; nothing was saved."""

    def __init__(self, draft: OutcomeDraft) -> None:
        super().__init__(f"draft {draft.pk} is at revision {draft.revision}")
        self.draft = draft


def _lock_item(item: AgendaItem) -> AgendaItem:
    return (
        AgendaItem.objects.select_for_update(no_key=True).select_related("meeting").get(pk=item.pk)
    )


@audit.atomic
def outcome_draft_save(
    *,
    item: AgendaItem,
    measures: list[dict[str, str]],
    follow_up_on: date | None,
    acting_user: Any,
    expected_revision: int | None,
) -> OutcomeDraft:
    """Saves the decision as typed so far (the autosave of meeting mode): measures and
    follow-up date together, one revision per draft against lost updates, as a checklist
    card does. Revision 0 means the recorder saw no draft yet."""
    locked = _lock_item(item)
    if locked.status != AgendaStatus.PENDING:
        raise ValidationError(_("This case is no longer open at this meeting."))
    draft, created = OutcomeDraft.objects.select_for_update(no_key=True).get_or_create(
        item=locked,
        defaults={
            "practice_id": locked.practice_id,
            "case_id": locked.case_id,
            "updated_by": acting_user,
        },
    )
    if not created and expected_revision is not None and draft.revision != expected_revision:
        raise StaleDraft(draft)
    draft.measures = measures
    draft.follow_up_on = follow_up_on
    draft.updated_by = acting_user
    if not created:
        draft.revision += 1
    draft.save()
    return draft


def attendance_text(meeting: BoardMeeting) -> str:
    """The attendance as the outcome record keeps it: "name (discipline); ..."."""
    return "; ".join(
        f"{a.name} ({a.get_discipline_display()})"
        for a in meeting.attendance.order_by("discipline", "name", "pk")
    )


@audit.atomic
def agenda_item_finalise(
    *, item: AgendaItem, acting_user: Any, expected_revision: int | None
) -> BoardOutcome:
    """Turns the decision draft into the note's recorded outcome (immutable from then on,
    versioned as every outcome is), held on the meeting's date with its attendance; the case
    counts as discussed and the draft is removed."""
    locked = _lock_item(item)
    meeting = locked.meeting
    if locked.status != AgendaStatus.PENDING:
        raise ValidationError(_("This case is no longer open at this meeting."))
    if meeting.date > timezone.localdate():
        raise ValidationError(_("The decision is recorded on or after the meeting's date."))
    draft = OutcomeDraft.objects.select_for_update(no_key=True).filter(item=locked).first()
    if draft is None or not draft.measures:
        raise ValidationError(_("Record at least one measure as the board documented it."))
    if expected_revision is not None and draft.revision != expected_revision:
        raise StaleDraft(draft)
    attendees = attendance_text(meeting)
    if not attendees:
        raise ValidationError(_("Record the meeting's attendance first."))
    earlier = BoardOutcome.objects.filter(note_id=locked.note_id).exists()
    outcome = outcome_record(
        note=locked.note,
        held_on=meeting.date,
        attendees=attendees,
        measures=draft.measures,
        follow_up_on=draft.follow_up_on,
        reason=(
            _("Board decision of the meeting on %(date)s.")
            % {"date": formats.date_format(meeting.date)}
            if earlier
            else ""
        ),
        acting_user=acting_user,
        agenda_item=locked,
    )
    draft.delete()
    locked.status = AgendaStatus.DISCUSSED
    locked.save(update_fields=["status"])
    return outcome


@audit.atomic
def agenda_item_set_status(*, item: AgendaItem, status: str, acting_user: Any) -> AgendaItem:
    """ "Deferred to the next meeting" (the case goes on the board's next meeting, created on
    demand), "not discussed", or back on the agenda from "not discussed"."""
    locked = _lock_item(item)
    allowed = {
        AgendaStatus.DEFERRED: (AgendaStatus.PENDING,),
        AgendaStatus.NOT_DISCUSSED: (AgendaStatus.PENDING,),
        AgendaStatus.PENDING: (AgendaStatus.NOT_DISCUSSED,),
    }
    if locked.status not in allowed.get(AgendaStatus(status), ()):
        raise ValidationError(_("This case is no longer open at this meeting."))
    locked.status = status
    locked.save(update_fields=["status"])
    if status == AgendaStatus.DEFERRED:
        board = locked.meeting.board
        following = (
            BoardMeeting.objects.filter(board=board, date__gt=locked.meeting.date)
            .order_by("date")
            .first()
        ) or _meeting_on(board, next_meeting_date(board, locked.meeting.date), acting_user)
        following = _lock_meeting(following)
        if not AgendaItem.objects.filter(meeting=following, note_id=locked.note_id).exists():
            AgendaItem.objects.create(
                practice_id=locked.practice_id,
                meeting=following,
                note_id=locked.note_id,
                case_id=locked.case_id,
                position=_end_position(following),
                registered_by=acting_user,
                deferred_from=locked,
            )
    return locked


# --- FHIR import ----------------------------------------------------------------------------


class PreviewGone(Exception):
    """The import preview was confirmed already (or expired): nothing was imported again."""


@audit.atomic
def case_import(
    *,
    practice: Practice,
    data: dict[str, Any],
    acting_user: Any,
    preview: FhirImportPreview | None = None,
) -> Case:
    """Creates a case and its rows from a confirmed FHIR import in one transaction: one
    insert per kind of row (bulk), the physician's code answers into the learned code map,
    the preview deleted, and the import recorded as an access event with the bundle's
    SHA-256. `data` is what `views.fhir` built from the preview and the physician's answers."""
    if preview is not None:
        locked = (
            FhirImportPreview.objects.select_for_update(no_key=True).filter(pk=preview.pk).first()
        )
        if locked is None:
            raise PreviewGone
    header = data["case"]
    if Case.objects.for_practice(practice).filter(label=header["label"]).exists():
        raise ValidationError({"label": _("This label is already used in the practice.")})
    case = Case.objects.create(
        practice=practice, created_by=acting_user, updated_by=acting_user, **header
    )
    scope = {"practice": practice, "case": case}
    tumours = Tumour.objects.bulk_create(
        [Tumour(**scope, **row["fields"]) for row in data.get("tumours", [])]
    )
    by_key = {
        row["key"]: tumour for row, tumour in zip(data.get("tumours", []), tumours, strict=True)
    }
    StagingRecord.objects.bulk_create(
        [
            StagingRecord(**scope, tumour=by_key.get(row.get("tumour") or ""), **row["fields"])
            for row in data.get("staging", [])
        ]
    )
    Metastasis.objects.bulk_create([Metastasis(**scope, **f) for f in data.get("metastases", [])])
    PerformanceStatus.objects.bulk_create(
        [PerformanceStatus(**scope, **f) for f in data.get("performance", [])]
    )
    Comorbidity.objects.bulk_create(
        [Comorbidity(**scope, **f) for f in data.get("comorbidities", [])]
    )
    episodes = TherapyLine.objects.bulk_create(
        [TherapyLine(**scope, **row["fields"]) for row in data.get("episodes", [])]
    )
    episode_by_key = {
        row["key"]: line for row, line in zip(data.get("episodes", []), episodes, strict=True)
    }
    AdverseEvent.objects.bulk_create(
        [
            AdverseEvent(
                **scope, line=episode_by_key.get(row.get("episode") or ""), **row["fields"]
            )
            for row in data.get("adverse_events", [])
        ]
    )
    Biomarker.objects.bulk_create([Biomarker(**scope, **f) for f in data.get("biomarkers", [])])
    GenomicVariant.objects.bulk_create(
        [GenomicVariant(**scope, **f) for f in data.get("genomic_variants", [])]
    )
    ImmuneFinding.objects.bulk_create(
        [ImmuneFinding(**scope, **f) for f in data.get("findings", [])]
    )
    now = timezone.now()
    CodeMapping.objects.bulk_create(
        [
            CodeMapping(practice=practice, mapped_by=acting_user, mapped_at=now, **mapping)
            for mapping in data.get("code_mappings", [])
        ],
        update_conflicts=True,
        unique_fields=[
            "practice",
            "source_system",
            "source_code",
            "source_version",
            "target_system",
        ],
        update_fields=["target_code", "display", "mapped_by", "mapped_at"],
    )
    if preview is not None:
        FhirImportPreview.objects.filter(pk=preview.pk).delete()
    audit.record_access(
        None,
        audit.FHIR_IMPORTED,
        practice_id=practice.pk,
        table=Case._meta.db_table,
        row_id=case.pk,
        case_id=case.pk,
        detail={"sha256": data.get("sha256", ""), "entries": data.get("entries", 0)},
        user=acting_user,
    )
    return case


@audit.atomic
def fhir_preview_save(
    *, user: Any, practice: Practice, sha256: str, entries: int, data: Any
) -> Any:
    """Stores an import preview (and removes expired ones, of anyone)."""
    now = timezone.now()
    FhirImportPreview.objects.filter(expires_at__lt=now).delete()
    return FhirImportPreview.objects.create(
        user=user,
        owner_practice=practice.pk,
        created_at=now,
        expires_at=now + FhirImportPreview.LIFETIME,
        bundle_sha256=sha256,
        entries=entries,
        data=data,
    )


@audit.atomic
def code_mapping_update(*, mapping: CodeMapping, target_code: str, acting_user: Any) -> CodeMapping:
    mapping.target_code = target_code
    mapping.mapped_by = acting_user
    mapping.mapped_at = timezone.now()
    mapping.save(update_fields=["target_code", "mapped_by", "mapped_at"])
    return mapping


@audit.atomic
def code_mapping_delete(*, mapping: CodeMapping) -> None:
    mapping.delete()
