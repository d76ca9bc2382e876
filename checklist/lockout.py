"""The login lockout (django-axes) as this project uses it.

A lockout is per user name *and* client address (`AXES_LOCKOUT_PARAMETERS`), so one client
guessing a user's password locks that user out from that client only, never for everyone.
That only holds if the address is the client's: behind the reverse proxy every request comes
from the proxy, so the client address is read from `X-Forwarded-For`, but only when
`DJANGO_BEHIND_PROXY` is set and the request comes from a configured trusted proxy
(`DJANGO_TRUSTED_PROXIES`); anyone else could write any address into that header.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import timedelta
from typing import Any

from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())
    except ValueError as error:
        raise ImproperlyConfigured(f"DJANGO_TRUSTED_PROXIES: {error}") from error


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Any, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """`AXES_CLIENT_IP_CALLABLE`: the address a lockout is kept for.

    REMOTE_ADDR, unless the app is behind the proxy and REMOTE_ADDR is a trusted proxy: then
    the right-most address of X-Forwarded-For that is not a trusted proxy (each proxy appends
    the address it was connected from, so entries left of the first untrusted one may be
    written by the client). An entry that is no address ends the walk at the last trusted hop.
    """
    remote = _address(request.META.get("REMOTE_ADDR", ""))
    if remote is None:
        return None
    if not settings.BEHIND_PROXY:
        return str(remote)
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not _trusted(remote, networks):
        return str(remote)
    client = remote
    hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def cool_off() -> timedelta:
    return get_cool_off() or timedelta(0)


def cool_off_minutes() -> int:
    return int(cool_off().total_seconds() // 60)


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """`AXES_LOCKOUT_CALLABLE`: the page that says how long the lockout lasts. Each attempt
    during the lockout starts it again (`AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`),
    so the full time is right whenever the page is shown."""
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": cool_off_minutes()},
        status=getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429),
    )


def _locked_attempts() -> QuerySet[Any]:
    """Per (user name, address): the failures inside the cool-off window, where they reach the
    limit. The lockout parameters are (user name, address), summed over user agents as
    axes does."""
    since = timezone.now() - cool_off()
    limit = get_failure_limit(None, None)  # type: ignore[arg-type]
    return (
        AccessAttempt.objects.filter(attempt_time__gte=since)
        .values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"))
        .filter(failures__gte=limit)
    )


def with_locked(memberships: QuerySet[Any]) -> QuerySet[Any]:
    """Memberships annotated with `locked`: whether their user is locked out from any address
    (a subquery, so the accounts page stays one query however many accounts it lists)."""
    return memberships.annotate(
        locked=Exists(_locked_attempts().filter(username=OuterRef("user__username")))
    )


def is_locked(username: str) -> bool:
    return _locked_attempts().filter(username=username).exists()


def unlock(username: str) -> int:
    """Ends the user's lockout from every address (and forgets their earlier failures);
    answers how many (address, user agent) records were removed."""
    return int(reset(username=username))


def practice_ids_of(username: str) -> list[int]:
    """The practices of an existing user name (none for a name that does not exist)."""
    from checklist.models import Membership

    user = get_user_model().objects.filter(username=username[:150]).first()
    if user is None:
        return []
    return sorted(set(Membership.objects.filter(user=user).values_list("practice_id", flat=True)))


def _proxy_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not settings.BEHIND_PROXY:
        return []
    try:
        networks = _networks(tuple(settings.TRUSTED_PROXIES))
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="checklist.E001")]
    if not networks:
        return [
            checks.Warning(
                "DJANGO_BEHIND_PROXY is set but DJANGO_TRUSTED_PROXIES is empty: every client"
                " has the proxy's address, so one client's failed logins lock a user out for"
                " everyone.",
                hint="Set DJANGO_TRUSTED_PROXIES to the reverse proxy's address (README).",
                id="checklist.W001",
            )
        ]
    return []


def register_checks() -> None:
    checks.register(_proxy_check, checks.Tags.security)
