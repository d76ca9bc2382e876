"""Audit: request context for the capture triggers, access events, and chain verification.

Change events are written by database triggers (migration 0001 holds the SQL: the capture
functions, the per-practice hash chain and the append-only guard). This module gives those
triggers their context: who is acting, on which path, in which request. It does so with a
session-level setting (`audit.context`) that the middleware sets at the start of each request
and resets at its end, so a persistent connection never carries one request's user into the
next. Access events (views, exports, logins) are written by `record_access`, through the same
SQL function, so they share the chain.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import user_logged_in, user_logged_out, user_login_failed
from django.db import connection
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

SYSTEM_CHAIN = 0  # the chain for events that belong to no practice
_yes = gettext_lazy("yes")
_no = gettext_lazy("no")
GENESIS = "0" * 64

# Access event names (the `op` of kind "access").
CASE_VIEWED = "case_viewed"
NOTE_VIEWED = "note_viewed"
NOTE_PRINTED = "note_printed"
EXPORTED = "exported"
LOGIN_SUCCESS = "login_success"
LOGIN_FAILURE = "login_failure"
LOGOUT = "logout"
PERMISSION_DENIED = "permission_denied"


def _actor(user: Any) -> tuple[int | None, str | None]:
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    return user.pk, user.get_username()


def set_context(
    *, user: Any = None, path: str | None = None, request_id: str | None = None
) -> None:
    actor_id, actor_name = _actor(user)
    payload = {
        "user_id": actor_id,
        "user_name": actor_name,
        "path": path,
        "request_id": request_id,
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.context', %s, false)", [json.dumps(payload)])


def reset_context() -> None:
    if connection.connection is None:  # nothing was set on a connection that no longer exists
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.context', '', false)")


@contextmanager
def audit_context(*, user: Any = None, path: str | None = None) -> Iterator[None]:
    """Context for work outside a request: management commands, scripts, tests."""
    set_context(user=user, path=path, request_id=str(uuid.uuid4()))
    try:
        yield
    finally:
        reset_context()


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
    from checklist.models import Membership

    if request is not None:
        set_context(user=user, path=request.path, request_id=getattr(request, "request_id", None))
    practice_ids = list(
        Membership.objects.filter(user=user, active=True).values_list("practice_id", flat=True)
    )
    for practice_id in sorted(practice_ids) or [SYSTEM_CHAIN]:
        record_access(request, LOGIN_SUCCESS, practice_id=practice_id, user=user)


def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    practice = getattr(request, "practice", None) if request is not None else None
    record_access(request, LOGOUT, practice_id=practice.pk if practice else None, user=user)


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already replaced the password in `credentials`; only the user name is kept.
    from django.contrib.auth import get_user_model

    from checklist.models import Membership

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


def connect_signals() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="audit_login")
    user_logged_out.connect(_on_logout, dispatch_uid="audit_logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="audit_login_failed")


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


def chain_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT practice_id FROM checklist_auditevent ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


def verify_chain(practice_id: int, *, batch: int = 5000) -> ChainResult:
    """Recompute one chain: each row's hash from its stored content, each link to the row before.

    Names the first broken sequence number: a modified row fails its own hash, a deleted row
    leaves a gap in `seq`, and swapped rows break the links.
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
            if seq != expected_seq:
                return ChainResult(practice_id, count, seq, stored_hash, expected_seq, "gap")
            if prev_hash != expected_prev:
                return ChainResult(practice_id, count, seq, stored_hash, seq, "broken link")
            if stored_hash != recomputed:
                return ChainResult(practice_id, count, seq, stored_hash, seq, "content changed")
            expected_seq, expected_prev = seq + 1, stored_hash
    return ChainResult(practice_id, count, expected_seq - 1, expected_prev)


def chain_heads() -> dict[int, tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (practice_id) practice_id, seq, hash FROM checklist_auditevent"
            " ORDER BY practice_id, seq DESC"
        )
        return {p: (s, h) for p, s, h in cursor.fetchall()}


def head_present(practice_id: int, seq: int, hash_: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM checklist_auditevent WHERE practice_id = %s AND seq = %s AND hash = %s",
            [practice_id, seq, hash_],
        )
        return cursor.fetchone() is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def case_changes_since(case: Any, version: int) -> list[Any]:
    """The change events of the requests that moved the case past `version`: who changed what
    since a form was opened, for the stale-version page."""
    from checklist.models import AuditEvent

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
    LOGIN_SUCCESS: gettext_lazy("logged in"),
    LOGIN_FAILURE: gettext_lazy("failed login"),
    LOGOUT: gettext_lazy("logged out"),
    PERMISSION_DENIED: gettext_lazy("permission denied"),
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


def _models_by_table() -> dict[str, Any]:
    from django.apps import apps

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
    from checklist.models import Code

    labels: dict[str, dict[str, str]] = {}
    for code in Code.objects.filter(system__in=set(CODE_LIST_FIELDS.values())):
        labels.setdefault(code.system, {})[code.code] = code.label(language)
    return labels


def _display(field: Any, value: Any, codes: dict[str, str] | None = None) -> str:
    if value is None or value == "":
        return "—"
    if codes:
        if isinstance(value, list):
            return ", ".join(codes.get(str(v), str(v)) for v in value)
        return f"{codes.get(str(value), str(value))} ({value})"
    choices = getattr(field, "choices", None) if field is not None else None
    if choices:
        labels = {str(k): str(v) for k, v in choices}
        if isinstance(value, list):
            return ", ".join(labels.get(str(v), str(v)) for v in value)
        return labels.get(str(value), str(value))
    if isinstance(value, bool):
        return str(_yes) if value else str(_no)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def field_changes(
    event: Any,
    models_by_table: dict[str, Any] | None = None,
    code_labels: dict[str, dict[str, str]] | None = None,
) -> list[FieldChange]:
    """An event's values as (field label, old, new), in the user's language, codes labelled."""
    models_by_table = models_by_table or _models_by_table()
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
    for name in names:
        if name in ("id", "practice_id", "case_id") and event.op != "UPDATE":
            continue
        if event.op != "UPDATE" and (old or new).get(name) in (None, "", [], {}):
            continue  # a created or deleted row: list what it held, not its empty fields
        field = fields.get(name)
        label = str(field.verbose_name) if field is not None else name
        codes = code_labels.get(CODE_LIST_FIELDS.get((event.table_name, name), ""))
        changes.append(
            FieldChange(
                label,
                _display(field, old.get(name), codes) if old else "",
                _display(field, new.get(name), codes) if new else "",
            )
        )
    return changes


def table_label(table_name: str, models_by_table: dict[str, Any] | None = None) -> str:
    model = (models_by_table or _models_by_table()).get(table_name)
    return str(model._meta.verbose_name) if model else table_name
