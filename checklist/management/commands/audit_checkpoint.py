"""Prints each chain's head as JSON, for keeping outside the database."""

import json
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from checklist import audit


class Command(BaseCommand):
    help = "Print the head (seq, hash) of every audit chain as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        heads = {
            str(practice_id): {"seq": seq, "hash": hash_}
            for practice_id, (seq, hash_) in audit.chain_heads().items()
        }
        self.stdout.write(json.dumps({"taken_at": timezone.now().isoformat(), "heads": heads}))
