"""The practice the load test (`make loadtest`, ops/loadtest.py) works in: physicians, an admin
with a known authenticator key, cases for the editors, a typical case and one with ten times
its rows. Idempotent; writes the logins and ids to a JSON file for the load test (mode 0600,
synthetic accounts of a synthetic practice only)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from checklist import services
from checklist.audit import audit_context
from checklist.management.commands.seed_cases import seed
from checklist.models import Case, CatalogueVersion, Category, Membership, Practice, StagingRecord

PRACTICE = "Load Test Practice"
PHYSICIANS = 20
EDITOR_CASES = 5
LIST_CASES = 200


def _user(username: str, password: str, practice: Practice, role: str) -> Any:
    user, _created = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    Membership.objects.get_or_create(practice=practice, user=user, defaults={"role": role})
    return user


def setup(password: str) -> dict[str, Any]:
    from tests.factories import seed_rows  # the rows the benchmarks use too (bench.py)

    with transaction.atomic(), audit_context(path="manage.py loadtest_setup"):
        practice = Practice.objects.filter(name=PRACTICE).first()
        fresh = practice is None
        if practice is None:
            practice = services.practice_create(name=PRACTICE)
            practice = services.practice_set_second_factor(practice=practice, for_physicians=False)
        services.catalogue_seed(practice=practice)
        physicians = [f"load.physician{n:02d}" for n in range(1, PHYSICIANS + 1)]
        for name in physicians:
            _user(name, password, practice, Membership.PHYSICIAN)
        admin = _user("load.admin", password, practice, Membership.PRACTICE_ADMIN)
        device, _created = TOTPDevice.objects.get_or_create(
            user=admin, name="load test", defaults={"confirmed": True}
        )
        if fresh:
            seed(practice, LIST_CASES, prefix="LOAD")
            for n in range(1, EDITOR_CASES + 1):
                case = Case.objects.create(
                    practice=practice, label=f"EDIT-{n}", created_by=admin, **Case.MINIMAL
                )
                seed_rows(case, 1)
            big = Case.objects.create(practice=practice, label="BIG-10X", **Case.MINIMAL)
            # About ten times a typical seeded case's rows (8 of each kind, 40 adverse events).
            seed_rows(big, 8)
        cases = Case.objects.filter(practice=practice)
        editors = [
            {
                "case": case.pk,
                "staging": StagingRecord.objects.filter(case=case).order_by("pk").first().pk,  # type: ignore[union-attr]
            }
            for case in cases.filter(label__startswith="EDIT-").order_by("label")
        ]
        version = CatalogueVersion.objects.for_practice(practice).newest_published()
        categories = list(
            Category.objects.filter(version=version, active=True)
            .order_by("position")
            .values_list("pk", flat=True)[:5]
        )
    return {
        "practice": practice.pk,
        "password": password,
        "physicians": physicians,
        "admin": "load.admin",
        "admin_totp_key": device.key,
        "editor_cases": editors,
        "categories": categories,
        "typical_case": cases.filter(label__startswith="LOAD").order_by("label").first().pk,  # type: ignore[union-attr]
        "big_case": cases.get(label="BIG-10X").pk,
    }


class Command(BaseCommand):
    help = "Create the load test's practice, users and cases; write their logins and ids."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="JSON file for ops/loadtest.py")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        # A new random password at each setup: the file is the only place that has it.
        data = setup(secrets.token_urlsafe(18))
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)
        self.stdout.write(f"load test practice ready: {len(data['physicians'])} physicians, {out}")
