"""Audit: the context for the capture triggers, access events, and chain verification.

Change events are written by database triggers (migration 0001 holds the SQL: the capture
functions, the per-practice hash chain and the append-only guard; 0003 refuses TRUNCATE).
The triggers read who is acting, on which path, in which request from the setting
`audit.context`. It is set per transaction: `atomic`, which every service uses instead of
`transaction.atomic`, opens the transaction and sets it with `set_config(..., true)`, so it
ends with the transaction. Nothing is reset after the response (a query there would fail on
a connection that has just died and replace a committed save's redirect with an error page),
and a pooled connection cannot carry one request's user into the next. What `atomic` sets
comes from a context variable: the middleware binds the request to it (no query), and
`audit_context` binds a fixed actor for commands and scripts.

Access events (views, exports, logins) are written by `record_access` with an explicit
context, through the same SQL function, so they share the chain.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import date
from typing import Any, ParamSpec, TypeVar

from django.apps import apps
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed
from django.db import connection, connections, models, transaction
from django.db.models import Value
from django.db.models.functions import Cast, Coalesce
from django.db.models.signals import post_migrate
from django.http import HttpRequest
from django.utils.functional import Promise
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import get_language, gettext, gettext_lazy

from checklist import rules
from checklist.models import (
    AuditEvent,
    BoardNote,
    BoardNoteVersion,
    Case,
    CatalogueVersion,
    Category,
    Checklist,
    ChecklistItem,
    Code,
    EpisodeKind,
    Membership,
    Practice,
    PracticeScoped,
    TherapyLine,
    compose_display_name,
    precise_date_fields,
)
from checklist.templatetags.checklist_tags import local_date, local_datetime
from checklist.templatetags.checklist_tags import partial_date as partial_date_text

SYSTEM_CHAIN = 0  # the chain for events that belong to no practice
_yes = gettext_lazy("yes")
_no = gettext_lazy("no")
GENESIS = "0" * 64

# Access event names (the `op` of kind "access").
CASE_VIEWED = "case_viewed"
NOTE_VIEWED = "note_viewed"
NOTE_PRINTED = "note_printed"
EXPORTED = "exported"
AGENDA_VIEWED = "agenda_viewed"  # a meeting's agenda or meeting mode (the cases it lists)
LOGIN_SUCCESS = "login_success"
LOGIN_FAILURE = "login_failure"
LOGOUT = "logout"
PERMISSION_DENIED = "permission_denied"
SIGN_REFUSED = "sign_refused"  # a wrong password at the signing of a board note
# The `reason` of a logout that a timeout made (keys: checklist.sessions.IDLE, MAX_AGE).
SESSION_END_REASONS = {
    "idle": "session expired: idle timeout",
    "max_age": "session expired: maximum lifetime",
}
ACCOUNT_LOCKED = "account_locked"  # too many failed logins for one user name from one address
ACCOUNT_UNLOCKED = "account_unlocked"  # a practice admin ended a lockout
# The second factor: django-otp's device tables carry no practice_id, so the triggers do not
# see them; these events are the record of enrolment, removal and use.
OTP_ENROLLED = "otp_enrolled"
OTP_REMOVED = "otp_removed"  # an admin removed a user's devices (lost device)
OTP_FAILED = "otp_failed"  # a wrong code at login, enrolment or re-authentication
OTP_RECOVERY_USED = "otp_recovery_used"
REAUTH_REFUSED = "reauth_refused"  # a wrong password at re-authentication
# The practice row has no audit trigger: its second-factor setting is recorded as an event.
SECOND_FACTOR_SETTING = "second_factor_setting"
FHIR_IMPORTED = "fhir_imported"  # a case created from a FHIR bundle (detail: its SHA-256)


def _actor(user: Any) -> tuple[int | None, str | None]:
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    return user.pk, user.get_username()


def _payload(*, user: Any, path: str | None, request_id: str | None) -> dict[str, Any]:
    actor_id, actor_name = _actor(user)
    return {"user_id": actor_id, "user_name": actor_name, "path": path, "request_id": request_id}


# What the next transaction's `audit.context` is built from: a function, so that a request's
# user is read when the transaction starts (a login during the request is followed).
_bound: ContextVar[Callable[[], dict[str, Any]] | None] = ContextVar("audit_bound", default=None)

P = ParamSpec("P")
R = TypeVar("R")


def bind_request(request: HttpRequest) -> Token[Callable[[], dict[str, Any]] | None]:
    """Binds the request as the context of the transactions it opens (pure Python)."""
    return _bound.set(
        lambda: _payload(
            user=getattr(request, "user", None),
            path=request.path,
            request_id=getattr(request, "request_id", None),
        )
    )


def unbind(token: Token[Callable[[], dict[str, Any]] | None]) -> None:
    _bound.reset(token)


def _set_context(payload: dict[str, Any] | None, *, local: bool) -> None:
    value = json.dumps(payload) if payload is not None else ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.context', %s, %s)", [value, local])


def atomic(func: Callable[P, R]) -> Callable[P, R]:
    """`transaction.atomic` that first gives the audit triggers the bound context, for this
    transaction only. Every service is wrapped in it; nested services set it again (one
    cheap query each). With nothing bound (a shell, a test calling a service directly), the
    setting is left as it is: unset, or what `audit_context` set."""

    @functools.wraps(func)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        with transaction.atomic():
            make = _bound.get()
            if make is not None:
                _set_context(make(), local=True)
            return func(*args, **kwargs)

    return inner


@contextmanager
def audit_context(*, user: Any = None, path: str | None = None) -> Iterator[None]:
    """Context for work outside a request: management commands, scripts, tests. Services
    called inside set it per transaction, as in a request; writes made directly (bulk_create,
    raw SQL) read the session-level setting made here, on a connection that the command owns,
    and cleared on the way out."""
    payload = _payload(user=user, path=path, request_id=str(uuid.uuid4()))
    token = _bound.set(lambda: payload)
    _set_context(payload, local=False)
    try:
        yield
    finally:
        _bound.reset(token)
        _set_context(None, local=False)


def record_access(
    request: HttpRequest | None,
    op: str,
    *,
    practice_id: int | None,
    table: str = "",
    row_id: Any = None,
    case_id: int | None = None,
    detail: dict[str, Any] | None = None,
    user: Any = None,
) -> None:
    """Append one access event. Ids and the case label only: never request bodies."""
    if user is None and request is not None:
        user = getattr(request, "user", None)
    actor_id, actor_name = _actor(user)
    context = {
        "user_id": actor_id,
        "user_name": actor_name,
        "path": request.path if request is not None else None,
        "request_id": getattr(request, "request_id", None),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT audit_access(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
            [
                practice_id or SYSTEM_CHAIN,
                table,
                op,
                None if row_id is None else str(row_id),
                case_id,
                json.dumps(context),
                json.dumps(detail or {}),
            ],
        )


def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Writes later in this request take the new user: `login` has set `request.user`, and the
    # bound context reads it when a transaction starts.
    practice_ids = list(
        Membership.objects.filter(user=user, active=True).values_list("practice_id", flat=True)
    )
    for practice_id in sorted(practice_ids) or [SYSTEM_CHAIN]:
        record_access(request, LOGIN_SUCCESS, practice_id=practice_id, user=user)


def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    practice = getattr(request, "practice", None) if request is not None else None
    # A session ended by its idle or absolute timeout (checklist.sessions) says so.
    reason = getattr(request, "session_end_reason", None) if request is not None else None
    record_access(
        request,
        LOGOUT,
        practice_id=practice.pk if practice else None,
        user=user,
        detail={"reason": SESSION_END_REASONS[reason]} if reason else None,
    )


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already replaced the password in `credentials`; only the user name is kept.
    typed = str(credentials.get("username", ""))[:150]
    user = get_user_model().objects.filter(username=typed).first()
    practice_ids = (
        sorted(Membership.objects.filter(user=user).values_list("practice_id", flat=True))
        if user
        else []
    )
    for practice_id in practice_ids or [SYSTEM_CHAIN]:
        record_access(
            request,
            LOGIN_FAILURE,
            practice_id=practice_id,
            detail={"username": typed},
            user=None,
        )


def _on_locked_out(
    sender: Any, request: HttpRequest | None, username: Any, ip_address: Any, **kwargs: Any
) -> None:
    """One event per lockout, in each practice of the user: axes signals again at every
    attempt during the lockout (each restarts it), those are failed logins already. The user
    name only when it exists; never the attempted password."""
    from axes.helpers import get_failure_limit

    from checklist import lockout

    failures = getattr(request, "axes_failures_since_start", None)
    if failures is not None and failures != get_failure_limit(request, None):
        return
    typed = str(username or "")[:150]
    memberships = list(
        Membership.objects.filter(user__username=typed).values_list("practice_id", "pk")
    )
    detail = {"address": ip_address, "minutes": lockout.cool_off_minutes()}
    if memberships:
        detail = {"username": typed, **detail}
    targets: list[tuple[int, int | None]] = [*sorted(memberships)] or [(SYSTEM_CHAIN, None)]
    for practice_id, membership_id in targets:
        record_access(
            request,
            ACCOUNT_LOCKED,
            practice_id=practice_id,
            table="checklist_membership" if membership_id else "",
            row_id=membership_id,
            detail=detail,
            user=None,
        )


def _practice_ids_past_the_trail(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """The trail outlives a flush (it is unmanaged, and refuses TRUNCATE), but `manage.py
    flush` restarts the practice ids: a new practice would take an id whose events are still in
    the trail and continue that practice's chain, showing its events as its own. Runs after
    every migrate and flush: moves the id sequence past the highest practice id in the trail."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT to_regclass('checklist_auditevent') IS NOT NULL")
        row = cursor.fetchone()
        if not (row and row[0]):  # migrated back before the trail existed
            return
        cursor.execute(
            """
            SELECT setval(s.seq, s.trail_max)
            FROM (SELECT pg_get_serial_sequence('checklist_practice', 'id') AS seq,
                         (SELECT max(practice_id) FROM checklist_auditevent) AS trail_max) AS s
            WHERE s.trail_max > coalesce(pg_sequence_last_value(s.seq::regclass), 0)
            """
        )


def connect_signals() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="audit_login")
    user_logged_out.connect(_on_logout, dispatch_uid="audit_logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="audit_login_failed")
    from axes.signals import user_locked_out

    user_locked_out.connect(_on_locked_out, dispatch_uid="audit_locked_out")
    post_migrate.connect(
        _practice_ids_past_the_trail,
        sender=apps.get_app_config("checklist"),
        dispatch_uid="audit_practice_ids",
    )


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainResult:
    practice_id: int
    events: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


_VERIFY_SQL = """
    SELECT seq, prev_hash, hash,
           encode(sha256(convert_to(prev_hash || audit_canonical(
               practice_id, seq, (extract(epoch FROM ts) * 1000000)::bigint, kind, table_name,
               op, row_id, case_id, actor_id, actor_name, path, request_id, old_values,
               new_values, detail), 'UTF8')), 'hex')
    FROM checklist_auditevent WHERE practice_id = %s ORDER BY seq
"""


EMPTY_CHAIN = "no events, but the practice has records"


def chain_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT practice_id FROM checklist_auditevent ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


def ids_to_verify() -> list[int]:
    """Every practice, whether or not it has a chain, and every chain, whether or not its
    practice still exists (the system chain 0 among them)."""
    return sorted({*Practice.objects.values_list("pk", flat=True), *chain_ids()})


def practice_has_records(practice_id: int) -> bool:
    """Whether any practice-scoped table holds a row of the practice. Each of those rows was
    written under a capture trigger, so the practice's chain cannot be empty."""
    tables = [
        connection.ops.quote_name(model._meta.db_table)
        for model in apps.get_app_config("checklist").get_models()
        if issubclass(model, PracticeScoped)
    ]
    union = " UNION ALL ".join(f"SELECT 1 FROM {t} WHERE practice_id = %s" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS ({union})", [practice_id] * len(tables))  # noqa: S608
        row = cursor.fetchone()
    return bool(row and row[0])


def verify_chain(
    practice_id: int, *, batch: int = 5000, on_batch: Callable[[int], None] | None = None
) -> ChainResult:
    """Recompute one chain: each row's hash from its stored content, each link to the row before.

    Names the first broken sequence number: a modified row fails its own hash, a deleted row
    leaves a gap in `seq`, and swapped rows break the links. An empty chain of a practice that
    has records is broken at 1: its events were removed (a TRUNCATE past the guard). Removing
    only the newest events leaves a chain that verifies; only a checkpoint kept outside the
    database reveals that. `on_batch` is told of every `batch` events read (a progress bar).
    """
    expected_seq, expected_prev, count = 1, GENESIS, 0
    # A named (server-side) cursor streams the chain without loading it into memory.
    with connection.cursor() as outer:
        outer.execute("SELECT 1")  # ensure a connection exists before taking the raw one
    raw = connection.connection
    assert raw is not None
    with raw.transaction(), raw.cursor(name="audit_verify") as cursor:
        cursor.itersize = batch
        cursor.execute(_VERIFY_SQL, [practice_id])
        for seq, prev_hash, stored_hash, recomputed in cursor:
            count += 1
            if on_batch is not None and count % batch == 0:
                on_batch(batch)
            if seq != expected_seq:
                return ChainResult(practice_id, count, seq, stored_hash, expected_seq, "gap")
            if prev_hash != expected_prev:
                return ChainResult(practice_id, count, seq, stored_hash, seq, "broken link")
            if stored_hash != recomputed:
                return ChainResult(practice_id, count, seq, stored_hash, seq, "content changed")
            expected_seq, expected_prev = seq + 1, stored_hash
    if count == 0 and practice_id != SYSTEM_CHAIN and practice_has_records(practice_id):
        return ChainResult(practice_id, 0, 0, GENESIS, 1, EMPTY_CHAIN)
    return ChainResult(practice_id, count, expected_seq - 1, expected_prev)


def chain_heads() -> dict[int, tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (practice_id) practice_id, seq, hash FROM checklist_auditevent"
            " ORDER BY practice_id, seq DESC"
        )
        return {p: (s, h) for p, s, h in cursor.fetchall()}


def hash_at(practice_id: int, seq: int) -> str | None:
    """The stored hash of one event, or None when the chain has no such event."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hash FROM checklist_auditevent WHERE practice_id = %s AND seq = %s",
            [practice_id, seq],
        )
        row = cursor.fetchone()
        return row[0] if row else None


def new_request_id() -> str:
    return uuid.uuid4().hex


def case_changes_since(case: Any, version: int) -> list[Any]:
    """The change events of the requests that moved the case past `version`: who changed what
    since a form was opened, for the stale-version page."""
    bumps = AuditEvent.objects.filter(
        practice_id=case.practice_id,
        table_name="checklist_case",
        row_id=str(case.pk),
        op="UPDATE",
        old_values__version__gte=version,
    )
    request_ids = [r for r in bumps.values_list("request_id", flat=True) if r]
    return list(
        AuditEvent.objects.filter(
            practice_id=case.practice_id, kind="change", request_id__in=request_ids
        ).order_by("seq")[:50]
    )


# --- reading the trail ----------------------------------------------------------------------

ACCESS_LABELS = {
    CASE_VIEWED: gettext_lazy("case viewed"),
    NOTE_VIEWED: gettext_lazy("board note viewed"),
    NOTE_PRINTED: gettext_lazy("board note printed"),
    EXPORTED: gettext_lazy("exported"),
    AGENDA_VIEWED: gettext_lazy("board meeting agenda viewed"),
    LOGIN_SUCCESS: gettext_lazy("logged in"),
    LOGIN_FAILURE: gettext_lazy("failed login"),
    LOGOUT: gettext_lazy("logged out"),
    PERMISSION_DENIED: gettext_lazy("permission denied"),
    SIGN_REFUSED: gettext_lazy("signing refused: wrong password"),
    ACCOUNT_LOCKED: gettext_lazy("account locked"),
    ACCOUNT_UNLOCKED: gettext_lazy("account unlocked"),
    OTP_ENROLLED: gettext_lazy("second factor enrolled"),
    OTP_REMOVED: gettext_lazy("second factor removed"),
    OTP_FAILED: gettext_lazy("wrong second-factor code"),
    OTP_RECOVERY_USED: gettext_lazy("recovery code used"),
    REAUTH_REFUSED: gettext_lazy("re-authentication refused: wrong password"),
    SECOND_FACTOR_SETTING: gettext_lazy("second-factor setting for physicians changed"),
    FHIR_IMPORTED: gettext_lazy("case imported from a FHIR bundle"),
}
CHANGE_LABELS = {
    "INSERT": gettext_lazy("created"),
    "UPDATE": gettext_lazy("changed"),
    "DELETE": gettext_lazy("deleted"),
}
LOGIN_OPS = (LOGIN_SUCCESS, LOGIN_FAILURE, LOGOUT)


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str
    # A structured value (a note's frozen snapshot) as HTML, which the page shows collapsed
    # behind a toggle rather than in the line.
    collapsed: SafeString | None = None
    summary: str = ""  # the toggle's text


def table_models() -> dict[str, Any]:
    """The app's models by database table name (the trail names tables)."""
    return {m._meta.db_table: m for m in apps.get_app_config("checklist").get_models()}


# Fields whose values are codes of a shipped code list: shown with the list's label.
CODE_LIST_FIELDS = {
    ("checklist_metastasis", "site"): "obds:fm_lokalisation",
    ("checklist_therapyline", "types"): "mii:therapie-typ",
    ("checklist_therapyline", "intent"): "mii:intention",
    ("checklist_therapyline", "end_reason"): "mii:therapie-ende-grund",
    ("checklist_boardnoteversion", "board_type"): "mii:therapieplanung-typ",
}


def code_list_labels(language: str | None) -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str]] = {}
    for code in Code.objects.filter(system__in=set(CODE_LIST_FIELDS.values())):
        labels.setdefault(code.system, {})[code.code] = code.label(language)
    return labels


# Labels of the columns whose model field has no translated name of its own.
FIELD_LABELS = {
    "case_id": gettext_lazy("case"),
    "user_id": gettext_lazy("user"),
    "category_id": gettext_lazy("category"),
    "checklist_id": gettext_lazy("checklist"),
    "note_id": gettext_lazy("board note"),
    "line_id": gettext_lazy("therapy line"),
    "tumour_id": gettext_lazy("tumour"),
    "version_id": gettext_lazy("catalogue version"),
    "supersedes_id": gettext_lazy("supersedes version"),
    "created_at": gettext_lazy("created at"),
    "created_by_id": gettext_lazy("created by"),
    "updated_at": gettext_lazy("changed at"),
    "updated_by_id": gettext_lazy("changed by"),
    "set_at": gettext_lazy("set at"),
    "set_by_id": gettext_lazy("set by"),
    "ready_at": gettext_lazy("ready at"),
    "signed_at": gettext_lazy("signed at"),
    "signed_by_id": gettext_lazy("signed by"),
    "recorded_at": gettext_lazy("recorded at"),
    "recorded_by_id": gettext_lazy("recorded by"),
    "published_at": gettext_lazy("published at"),
    "published_by_id": gettext_lazy("published by"),
    "moved_at": gettext_lazy("moved at"),
    "state": gettext_lazy("state"),
    "snapshot": gettext_lazy("snapshot"),
    "snapshot_hash": gettext_lazy("snapshot hash (SHA-256)"),
    "revision": gettext_lazy("revision"),
    "number": gettext_lazy("number"),
    "version": gettext_lazy("record version"),
    "measures": gettext_lazy("measures"),
    "previous_status": gettext_lazy("previous status"),
    "previous_note": gettext_lazy("previous note"),
    "prior_therapy_stated_on": gettext_lazy("no prior therapy stated on"),
    "oncotree_name": gettext_lazy("OncoTree name"),
    "oncotree_release": gettext_lazy("OncoTree release"),
    "oncotree_tissue": gettext_lazy("OncoTree tissue"),
    "oncotree_main_type": gettext_lazy("OncoTree main type"),
    "change_note": gettext_lazy("change note"),
    "source_title": gettext_lazy("source title"),
}

# Keys of an access event's detail, as the trail names them.
DETAIL_LABELS = {
    "label": gettext_lazy("case"),
    "sha256": gettext_lazy("SHA-256 of the bundle"),
    "entries": gettext_lazy("entries of the bundle"),
    "version": gettext_lazy("version"),
    "format": gettext_lazy("format"),
    "filters": gettext_lazy("filters"),
    "username": gettext_lazy("user name typed"),
    "reason": gettext_lazy("reason"),
    "language": gettext_lazy("language"),
    "page": gettext_lazy("page"),
    "needs": gettext_lazy("role needed"),
    "address": gettext_lazy("client address"),
    "minutes": gettext_lazy("locked for minutes"),
    "account": gettext_lazy("account"),
    "step": gettext_lazy("step"),
    "devices": gettext_lazy("devices removed"),
    "second_factor_for_physicians": gettext_lazy("second factor required for physicians"),
    "meeting": gettext_lazy("board meeting"),
    "board": gettext_lazy("board"),
    "cases": gettext_lazy("cases"),
}


def _field_label(name: str, field: Any) -> str:
    if field is not None and isinstance(field.verbose_name, Promise):
        return str(field.verbose_name)
    if name in FIELD_LABELS:
        return str(FIELD_LABELS[name])
    return str(field.verbose_name) if field is not None else name.replace("_", " ")


# --- labels of the rows that values point to ------------------------------------------------


def _by_language(english: str, german: str, language: str | None) -> str:
    return german if (language or "").startswith("de") and german else english


# How a row of each model that the trail points to (a foreign key among the values, or the row
# an event is about) is labelled: two columns read for it in the one label query of a page
# (`row_labels`), and the label made of them. Users are named by `compose_display_name`; a row
# of any other model, or one that no longer exists, by its id.
ROW_LABELS: dict[Any, tuple[tuple[str, str | None], Callable[[str, str, str | None], str]]] = {
    Case: (("label", None), lambda a, b, lang: a),
    Category: (("name_en", "name_de"), _by_language),
    ChecklistItem: (("category__name_en", "category__name_de"), _by_language),
    Checklist: (("case__label", None), lambda a, b, lang: a),
    BoardNote: (("case__label", None), lambda a, b, lang: a),
    CatalogueVersion: (
        ("number", None),
        lambda a, b, lang: gettext("catalogue version %(n)s") % {"n": a},
    ),
    BoardNoteVersion: (("number", None), lambda a, b, lang: gettext("version %(n)s") % {"n": a}),
    TherapyLine: (("number", "kind"), lambda a, b, lang: _episode_label(a, b)),
}


def _episode_label(number: str, kind: str) -> str:
    """A systemic line by its number ("line 2"); any other episode by its kind."""
    if number:
        return gettext("line %(n)s") % {"n": number}
    return str(dict(EpisodeKind.choices).get(kind, kind))


def _user_model() -> Any:
    return get_user_model()


def _row_targets(event: Any, models_by_table: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """(model, primary key) of every row an event points to: the user who acted, its case,
    its own row when that has a label, and the users and rows among its values."""
    user_model = _user_model()
    if event.actor_id is not None:
        yield user_model, str(event.actor_id)
    if event.case_id is not None:
        yield Case, str(event.case_id)
    model = models_by_table.get(event.table_name)
    if model is None or event.kind != "change":
        return
    if event.row_id and model._meta.pk.related_model is user_model:
        yield user_model, str(event.row_id)  # an account's profile: the person
    elif event.row_id and model in ROW_LABELS:
        yield model, str(event.row_id)
    fields = {f.attname: f for f in model._meta.concrete_fields}
    for values in (event.old_values or {}, event.new_values or {}):
        for name, value in values.items():
            field = fields.get(name)
            target = field.related_model if isinstance(field, models.ForeignKey) else None
            if value is not None and (target is user_model or target in ROW_LABELS):
                yield target, str(value)


def _as_text(expression: Any) -> Any:
    if expression is None:
        return Value("", output_field=models.TextField())
    return Cast(expression, output_field=models.TextField())


def row_labels(
    events: list[Any], language: str | None, models_by_table: dict[str, Any] | None = None
) -> dict[tuple[Any, str], str]:
    """Labels for everything a page of events points to, keyed by (model, primary key as
    text): the people (who acted, "signed by"...) with their titles, the cases, and the rows
    of ROW_LABELS. One query for the whole page, however many events and kinds of rows it
    shows (a UNION ALL of one SELECT per kind). A row that no longer exists has no label."""
    models_by_table = models_by_table or table_models()
    wanted: dict[Any, set[int]] = {}
    for event in events:
        for model, pk in _row_targets(event, models_by_table):
            if pk.isdigit():
                wanted.setdefault(model, set()).add(int(pk))
    user_model = _user_model()
    columns = ("label_kind", "label_key", "label_a", "label_b", "label_c", "label_d")
    parts = []
    for model, ids in wanted.items():
        a: str | None
        b: str | None
        c: str | None
        d: str | None
        if model is user_model:
            a, b, c, d = "first_name", "last_name", "username", "account_profile__title"
        else:
            (a, b), _label = ROW_LABELS[model]
            c = d = None
        parts.append(
            model.objects.filter(pk__in=sorted(ids))
            .annotate(
                label_kind=Value(model._meta.db_table, output_field=models.TextField()),
                label_key=_as_text("pk"),
                label_a=_as_text(a),
                label_b=_as_text(b),
                label_c=_as_text(c),
                label_d=Coalesce(_as_text(d), Value("", output_field=models.TextField())),
            )
            .values_list(*columns)
        )
    if not parts:
        return {}
    by_table = {model._meta.db_table: model for model in wanted}
    labels: dict[tuple[Any, str], str] = {}
    for kind, key, a, b, c, d in parts[0].union(*parts[1:], all=True):
        model = by_table[kind]
        if model is user_model:
            labels[(model, key)] = compose_display_name(d, a, b, c)
        else:
            labels[(model, key)] = ROW_LABELS[model][1](a, b, language)
    return labels


def event_row_label(
    event: Any, labels: dict[tuple[Any, str], str], models_by_table: dict[str, Any]
) -> str:
    """What an event's own row is called (a checklist item by its category, an account by
    its person's name), or ""."""
    model = models_by_table.get(event.table_name)
    if model is None or not event.row_id:
        return ""
    if model._meta.pk.related_model is _user_model():
        return labels.get((_user_model(), str(event.row_id)), "")
    return labels.get((model, str(event.row_id)), "")


def _is_datetime_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 16 and value[4] == "-" and value[10] == "T"


def _tree(value: Any) -> SafeString:
    """A JSON value as nested definition lists: readable, never program text. Keys are shown
    as words; times in local time."""
    if isinstance(value, dict):
        return format_html(
            '<dl class="audit-tree mb-0">{}</dl>',
            format_html_join(
                "",
                "<dt>{}</dt><dd>{}</dd>",
                (
                    (str(key).replace("_", " ").capitalize(), _tree(item))
                    for key, item in value.items()
                ),
            ),
        )
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return format_html("{}", ", ".join(_text(item) for item in value) or "—")
        return format_html(
            '<ol class="mb-0">{}</ol>',
            format_html_join("", "<li>{}</li>", ((_tree(item),) for item in value)),
        )
    return format_html("{}", _text(value))


def _snapshot_html(snapshot: dict[str, Any]) -> SafeString:
    """A board note's frozen snapshot as the note itself reads (`notes.document`, in the
    reader's language): section headings and (label, value) rows. A snapshot the note code
    cannot read is shown as a plain tree of its values."""
    from checklist import notes

    try:
        document = notes.document(snapshot, get_language() or "en")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return _tree(snapshot)
    parts = []
    for section in document.sections:
        groups = []
        for group in section.groups:
            rows = format_html_join(
                "",
                '<dt class="col-sm-4 fw-normal text-body-secondary">{}</dt>'
                '<dd class="col-sm-8 mb-0">{}{}</dd>',
                (
                    (row.label, row.value or "—", f" “{row.quote}”" if row.quote else "")
                    for row in group.rows
                ),
            )
            groups.append(
                format_html(
                    "{}{}",
                    format_html('<p class="fw-semibold mb-0 mt-1">{}</p>', group.heading)
                    if group.heading
                    else "",
                    format_html('<dl class="row mb-1">{}</dl>', rows)
                    if group.rows
                    else format_html('<p class="mb-1">{}</p>', group.empty or "—"),
                )
            )
        parts.append(
            format_html(
                '<section class="mb-2"><h3 class="h6 mt-2 mb-1">{}</h3>{}</section>',
                section.title,
                format_html_join("", "{}", ((g,) for g in groups)),
            )
        )
    return format_html(
        '<div class="audit-tree">{}</div>', format_html_join("", "{}", ((p,) for p in parts))
    )


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return str(_yes) if value else str(_no)
    if _is_datetime_text(value):
        return local_datetime(value)
    return str(value)


def _display(
    field: Any,
    value: Any,
    codes: dict[str, str] | None = None,
    labels: dict[tuple[Any, str], str] | None = None,
) -> str:
    if value is None or value == "":
        return "—"
    target = field.related_model if isinstance(field, models.ForeignKey) else None
    if target is not None:
        # A row is named by its label, never by its bare id: "Dr. Dana Demo", not "1".
        found = (labels or {}).get((target, str(value)))
        return found if found else f"#{value}"
    if isinstance(field, models.DateTimeField):
        return local_datetime(value)
    if isinstance(field, models.DateField):
        return local_date(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        # e.g. an outcome's measures: one "key: value" group per entry
        return "; ".join(
            ", ".join(f"{k.replace('_', ' ')}: {_text(v)}" for k, v in item.items() if v != "")
            for item in value
        )
    if codes:
        if isinstance(value, list):
            return ", ".join(codes.get(str(v), str(v)) for v in value)
        return f"{codes.get(str(value), str(value))} ({value})"
    choices = getattr(field, "choices", None) if field is not None else None
    if choices:
        choice_labels = {str(k): str(v) for k, v in choices}
        if isinstance(value, list):
            return ", ".join(choice_labels.get(str(v), str(v)) for v in value)
        return choice_labels.get(str(value), str(value))
    if isinstance(value, bool):
        return str(_yes) if value else str(_no)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _date_at(values: dict[str, Any], name: str) -> str:
    """A recorded date from the trail's values at its precision ("2021-02", "2021")."""
    value = values.get(name)
    if not value:
        return "—"
    precision = values.get(f"{name}_precision") or rules.DAY
    return partial_date_text(rules.PartialDate(date.fromisoformat(value), precision))


def field_changes(
    event: Any,
    models_by_table: dict[str, Any] | None = None,
    code_labels: dict[str, dict[str, str]] | None = None,
    labels: dict[tuple[Any, str], str] | None = None,
) -> list[FieldChange]:
    """An event's values as (field label, old, new), in the user's language: codes and
    choices by their labels, users and other rows by name (`labels`, from `row_labels`),
    times in local time; a structured value (a snapshot) as collapsible HTML."""
    models_by_table = models_by_table or table_models()
    code_labels = code_labels or {}
    model = models_by_table.get(event.table_name)
    fields = {f.attname: f for f in model._meta.concrete_fields} if model else {}
    old = event.old_values or {}
    new = event.new_values or {}
    changes = []
    names = list(dict.fromkeys([*new.keys(), *old.keys()]))
    if fields:  # the model's own field order reads better than jsonb's key order
        order = {name: index for index, name in enumerate(fields)}
        names.sort(key=lambda name: order.get(name, len(order)))
    # A date and its precision are one value on the page: "2021-02", not "2021-02-01" and a
    # separate "precision: month" (the trigger records the two together).
    precise = {f"{n}_precision": n for n in precise_date_fields(model)} if model else {}
    for name in names:
        if name in ("id", "practice_id", "case_id") and event.op != "UPDATE":
            continue
        if name in precise and (precise[name] in old or precise[name] in new):
            continue
        if event.op != "UPDATE" and (old or new).get(name) in (None, "", [], {}):
            continue  # a created or deleted row: list what it held, not its empty fields
        field = fields.get(name)
        label = _field_label(name, field)
        structured = new.get(name) if isinstance(new.get(name), dict) else old.get(name)
        if isinstance(structured, dict):
            if name == "snapshot" and event.table_name == "checklist_boardnoteversion":
                shown, summary = _snapshot_html(structured), gettext("show snapshot")
            else:
                shown, summary = _tree(structured), gettext("show values")
            changes.append(FieldChange(label, "", "", shown, summary))
            continue
        if f"{name}_precision" in precise:
            changes.append(
                FieldChange(
                    label,
                    _date_at(old, name) if old else "",
                    _date_at(new, name) if new else "",
                )
            )
            continue
        codes = code_labels.get(CODE_LIST_FIELDS.get((event.table_name, name), ""))
        changes.append(
            FieldChange(
                label,
                _display(field, old.get(name), codes, labels) if old else "",
                _display(field, new.get(name), codes, labels) if new else "",
            )
        )
    return changes


def detail_items(detail: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An access event's detail as (label, text): "case: BC-1", "filters: case: BC-1"."""
    items = []
    for key, value in (detail or {}).items():
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) or "—"
        elif isinstance(value, list):
            text = ", ".join(_text(v) for v in value) or "—"
        else:
            text = _text(value)
        items.append((str(DETAIL_LABELS.get(key, key.replace("_", " "))), text))
    return items


# What the trail calls the rows of each table, where the model has no translated name.
TABLE_LABELS = {
    "checklist_practice": gettext_lazy("practice"),
    "checklist_membership": gettext_lazy("membership"),
    "checklist_case": gettext_lazy("case"),
    "checklist_tumour": gettext_lazy("tumour"),
    "checklist_stagingrecord": gettext_lazy("staging record"),
    "checklist_biomarker": gettext_lazy("biomarker"),
    "checklist_metastasis": gettext_lazy("metastasis"),
    "checklist_therapyline": gettext_lazy("therapy line"),
    "checklist_adverseevent": gettext_lazy("adverse event"),
    "checklist_performancestatus": gettext_lazy("performance status"),
    "checklist_immunefinding": gettext_lazy("immune finding"),
    # Gone since issue 15 (immune-related events are adverse events with a flag); its rows
    # stay in the trail under this name.
    "checklist_immuneadverseevent": gettext_lazy("immune-related adverse event"),
    "checklist_comorbidity": gettext_lazy("comorbidity"),
    "checklist_organfunction": gettext_lazy("organ function"),
    "checklist_medication": gettext_lazy("medication"),
    "checklist_lifestyle": gettext_lazy("smoking and alcohol"),
    "checklist_familyhistory": gettext_lazy("family history"),
    "checklist_genomicvariant": gettext_lazy("genomic finding"),
    "checklist_catalogueversion": gettext_lazy("catalogue version"),
    "checklist_category": gettext_lazy("category"),
    "checklist_checklist": gettext_lazy("checklist"),
    "checklist_checklistitem": gettext_lazy("checklist item"),
    "checklist_boardnote": gettext_lazy("board note"),
    "checklist_boardnoteversion": gettext_lazy("board note version"),
    "checklist_boardoutcome": gettext_lazy("board outcome"),
}


def table_label(table_name: str, models_by_table: dict[str, Any] | None = None) -> str:
    model = (models_by_table or table_models()).get(table_name)
    if model is not None and isinstance(model._meta.verbose_name, Promise):
        return str(model._meta.verbose_name)
    if table_name in TABLE_LABELS:
        return str(TABLE_LABELS[table_name])
    return str(model._meta.verbose_name) if model else table_name
