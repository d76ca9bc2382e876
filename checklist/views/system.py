"""Health check and error pages."""

from __future__ import annotations

from django.db import DatabaseError, connection, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from checklist.routers import REPLICA, replica_configured

# How far the replica is behind: 0 when it has replayed all it received (an idle primary
# writes nothing, and the age of the last replayed transaction would grow without any lag).
_REPLICA_LAG_SQL = """
    SELECT pg_is_in_recovery(),
           CASE WHEN NOT pg_is_in_recovery()
                  OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
           END
"""


def healthz(request: HttpRequest) -> HttpResponse:
    """For the load balancer: 200 when the primary answers, 503 otherwise. With a replica
    configured, its state and lag are reported too; a replica that is away does not take the
    app server out of the balancer (the primary still serves everything but the trail pages).
    No authentication and no patient data."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "database unavailable"}, status=503)
    body: dict[str, object] = {"status": "ok"}
    if replica_configured():
        try:
            with connections[REPLICA].cursor() as cursor:
                cursor.execute(_REPLICA_LAG_SQL)
                in_recovery, lag = cursor.fetchone()
        except DatabaseError:
            body["replica"] = {"status": "unavailable"}
        else:
            body["replica"] = {
                "status": "ok" if in_recovery else "not a standby",
                "lag_seconds": round(float(lag), 3),
            }
    return JsonResponse(body)


def ping(request: HttpRequest) -> HttpResponse:
    """Answers without the database: the app server's own floor for load tests."""
    return HttpResponse(b"pong", content_type="text/plain")


def error_400(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A parameter that did not validate (`common.BadQuery` names which) or a request Django
    refused; the user sees which parameter, never a stack trace."""
    form = getattr(exception, "form", None)
    errors = form.errors if form is not None else {}
    return render(request, "400.html", {"errors": errors}, status=400)


def error_404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "404.html", status=404)


def error_500(request: HttpRequest) -> HttpResponse:
    return render(request, "500.html", status=500)
