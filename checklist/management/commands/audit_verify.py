"""Recomputes every audit chain; names the first broken (practice, seq) or says OK."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from checklist import audit
from checklist.models import AuditVerification


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains (and, with --checkpoint, saved chain heads)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--practice", type=int, help="verify only this practice's chain")
        parser.add_argument(
            "--checkpoint", type=Path, help="a file written by audit_checkpoint to check against"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids = [options["practice"]] if options["practice"] is not None else audit.chain_ids()
        failures = []
        for practice_id in ids:
            result = audit.verify_chain(practice_id)
            if practice_id != audit.SYSTEM_CHAIN:
                AuditVerification.objects.create(
                    chain=practice_id,
                    ran_by="manage.py audit_verify",
                    ok=result.ok,
                    events=result.events,
                    head_seq=result.head_seq,
                    broken_at=result.broken_at,
                    reason=result.reason,
                )
            if result.ok:
                self.stdout.write(
                    f"practice {practice_id}: OK ({result.events} events, head {result.head_seq})"
                )
            else:
                failures.append(
                    f"practice {practice_id}: BROKEN at seq {result.broken_at} ({result.reason})"
                )
        if options["checkpoint"]:
            saved = json.loads(options["checkpoint"].read_text())
            for practice_id, head in saved["heads"].items():
                if not audit.head_present(int(practice_id), head["seq"], head["hash"]):
                    failures.append(
                        f"practice {practice_id}: checkpoint head seq {head['seq']} is missing"
                        " or changed"
                    )
        for failure in failures:
            self.stdout.write(failure)
        if failures:
            raise CommandError(f"audit trail verification failed ({len(failures)} problem(s))")
        self.stdout.write("audit trail OK")
