"""Read routing to a streaming replica (settings `DATABASE_REPLICA_URL`).

Only the pages that tolerate a few seconds of lag read from the replica: the audit trail, its
reports, its CSV export, the chain overview and a case's history. Everything else, every write,
and the reads that decide who the user is and what they may see (sessions, users, memberships,
second-factor devices, lockouts) stay on the primary, so a revoked membership or an ended
session is never read stale.

A browser that has just written reads from the primary for `REPLICA_STICKY_SECONDS`: its
own write may not have reached the replica yet, neither for the page it is redirected to nor
for the next ones. `ReplicaMiddleware` marks such a browser with a short-lived cookie (no
query; a forged cookie only sends its own reads to the primary). A replica that cannot be
reached sends its pages to the primary for a while.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

REPLICA = "replica"
PRIMARY = "default"
# The url names of the pages that may read from the replica.
LAG_TOLERANT = frozenset(
    {"audit_trail", "audit_reports", "audit_export", "audit_chain", "case_history"}
)
# Models read on the primary even on those pages: who the user is and what they may see.
_PRIMARY_ONLY = frozenset(
    {"checklist.membership", "checklist.usersession", "checklist.accountprofile"}
)
STICKY_COOKIE = "primary_until"
_SAFE_METHODS = frozenset({"GET", "HEAD"})

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)
# After a failed connection to the replica, its pages read from the primary for this long
# before the replica is tried again (per process), so an outage costs one wait, not one each.
REPLICA_RETRY_SECONDS = 10.0
_replica_down_until = 0.0


def replica_configured() -> bool:
    return REPLICA in connections.settings


class ReplicaRouter:
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        if not _replica_reads.get():
            return PRIMARY
        opts = model._meta
        if opts.app_label != "checklist" or opts.label_lower in _PRIMARY_ONLY:
            return PRIMARY
        return REPLICA

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # one database, two copies

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY


def reads_may_use_replica(request: HttpRequest, now: float | None = None) -> bool:
    """Whether this request's lag-tolerant reads go to the replica."""
    if not replica_configured() or request.method not in _SAFE_METHODS:
        return False
    if _sticky_until(request) > (time.time() if now is None else now):
        return False
    try:
        name = resolve(request.path_info).url_name
    except Resolver404:
        return False
    return name in LAG_TOLERANT


def replica_usable() -> bool:
    """Whether the replica takes a connection now: a replica that is away sends its pages to
    the primary instead of failing them."""
    global _replica_down_until
    if time.monotonic() < _replica_down_until:
        return False
    try:
        connections[REPLICA].ensure_connection()
    except DatabaseError:
        _replica_down_until = time.monotonic() + REPLICA_RETRY_SECONDS
        return False
    return True


def _sticky_until(request: HttpRequest) -> float:
    try:
        return float(request.COOKIES.get(STICKY_COOKIE, "0"))
    except ValueError:
        return 0.0


class ReplicaMiddleware:
    """Lets the lag-tolerant pages read from the replica, and keeps a browser that has just
    written (any POST, PUT, PATCH or DELETE) on the primary for a few seconds after."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_configured():
            return self.get_response(request)
        token = _replica_reads.set(reads_may_use_replica(request) and replica_usable())
        try:
            response = self.get_response(request)
        finally:
            _replica_reads.reset(token)
        if request.method not in _SAFE_METHODS:
            seconds = settings.REPLICA_STICKY_SECONDS
            response.set_cookie(
                STICKY_COOKIE,
                f"{time.time() + seconds:.0f}",
                max_age=seconds,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
