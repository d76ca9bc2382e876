"""Template context for every page: the active practice and membership."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def practice_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "active_membership": getattr(request, "membership", None),
        "active_practice": getattr(request, "practice", None),
        "user_memberships": getattr(request, "memberships", []),
    }
