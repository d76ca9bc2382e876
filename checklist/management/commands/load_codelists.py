"""Loads fixtures/codelists.json; idempotent (updates entries in place, adds new ones)."""

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from checklist.models import Code

FIXTURE = Path(settings.BASE_DIR) / "fixtures" / "codelists.json"
FIELDS = ["display", "display_de", "release", "parent", "level", "selectable", "sort", "extra"]


def load_codelists() -> int:
    entries = json.loads(FIXTURE.read_text(encoding="utf-8"))
    with transaction.atomic():
        Code.objects.bulk_create(
            [Code(**entry) for entry in entries],
            update_conflicts=True,
            unique_fields=["system", "code"],
            update_fields=FIELDS,
        )
    return len(entries)


class Command(BaseCommand):
    help = "Load the shipped code lists (OncoTree, oBDS, MII) into the database."

    def handle(self, *args: Any, **options: Any) -> None:
        count = load_codelists()
        self.stdout.write(f"Code lists loaded: {count} entries.")
