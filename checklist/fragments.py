"""Rendered page bodies kept in the process, keyed by everything they are rendered from.

A case page's body is a function of the rows the view read, the viewer's role, the language,
the time zone and today's date. The key is a hash of exactly those: the rows as the database
returned them (`record.RecordRows`, from `record.fetch_rows`), the fields of the model
instances handed in, and the request's facts named by the view. No key is ever invalidated:
a saved change gives other rows, so another key; an unchanged record renders the same HTML.

What the key cannot see, the body must not read:
- the database: a query while making the body's context or rendering it means it read
  something that is not in the key. The body is then served but not kept, and a warning
  names the template (never data). The tests make it an error (`STRICT`).
- the request and the context processors: the body is rendered with a plain context of what
  the view hands in, never `request`, `user` or `active_membership`; only the language (in
  the key) is there as `LANGUAGE_CODE`, as the i18n context processor names it.
- the CSRF token: rendered as a per-process placeholder and replaced by the request's own
  token when served, so no response carries another session's token.

Kept in this process only (`CACHES["pages"]`, local memory, bounded), never on disk or in a
shared cache: the cache is as private as the worker's memory already is.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from django.core.cache import caches
from django.core.signals import setting_changed
from django.db import connections
from django.db.models import Model
from django.dispatch import receiver
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

logger = logging.getLogger(__name__)

CACHE = "pages"
# A token no form can carry by chance: replaced by the request's CSRF token when served.
CSRF_PLACEHOLDER = f"csrf-{secrets.token_hex(16)}"
STRICT = False  # tests: a query during a kept body's rendering raises instead of a warning


class ReadTheDatabase(Exception):
    """A body's rendering queried the database: its key cannot see what it read."""


def instance_state(obj: Model | None, _seen: frozenset[int] = frozenset()) -> tuple[Any, ...]:
    """The values a model instance was read with, and those of the related instances read
    with it (`select_related`), for a key. A related instance that points back to one on the
    way (a user's profile caches its user) is named, not followed again."""
    if obj is None:
        return ()
    values = tuple(getattr(obj, f.attname) for f in obj._meta.concrete_fields)
    seen = _seen | {id(obj)}
    related = tuple(
        (name, ("seen", other.pk) if id(other) in seen else instance_state(other, seen))
        for name, other in sorted(obj._state.fields_cache.items())
    )
    return (type(obj).__name__, values, related)


def fingerprint(*parts: Any) -> str:
    """A hash of the parts' values. Pickle writes equal values of these types (rows of
    dates, decimals, strings, numbers, None) the same way within one process; two different
    values never hash alike, which is all a key needs."""
    return hashlib.blake2b(pickle.dumps(parts, protocol=5), digest_size=20).hexdigest()


def body(
    request: HttpRequest,
    template_name: str,
    key_parts: tuple[Any, ...],
    make_context: Callable[[], dict[str, Any]],
) -> SafeString:
    """The rendered `template_name` for these `key_parts`, from this process's cache or
    rendered now with `make_context()` (called only then)."""
    key = "{}:{}".format(
        template_name,
        fingerprint(
            key_parts,
            get_language(),
            timezone.get_current_timezone_name(),
            timezone.localdate(),
        ),
    )
    cache = caches[CACHE]
    html: str | None = cache.get(key)
    if html is None:
        html, queries = _render(template_name, make_context)
        if queries:
            if STRICT:
                raise ReadTheDatabase(f"{template_name}: {queries} queries while rendering")
            logger.warning(
                "%s: its rendering queried the database (%d queries); not kept",
                template_name,
                queries,
            )
        else:
            cache.set(key, html)
    if CSRF_PLACEHOLDER in html:
        html = html.replace(CSRF_PLACEHOLDER, get_token(request))
    return mark_safe(html)  # noqa: S308  # rendered by the template engine, which escaped it


def _render(template_name: str, make_context: Callable[[], dict[str, Any]]) -> tuple[str, int]:
    """The template rendered with a plain context (no request, no context processors), and
    how many queries making that context and rendering made on any database."""
    queries = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context_: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context_)

    template = get_template(template_name)
    with ExitStack() as stack:
        for alias in connections:
            stack.enter_context(connections[alias].execute_wrapper(count))
        # The language (in the key) as the i18n context processor names it.
        context = {
            "LANGUAGE_CODE": get_language(),
            **make_context(),
            "csrf_token": CSRF_PLACEHOLDER,
        }
        html = template.render(context)
    return html, queries


@receiver(setting_changed)
def _forget(**_kwargs: Any) -> None:
    """A changed setting (tests) may change how a body renders: start again."""
    caches[CACHE].clear()
