"""Recomputes the audit chain of every practice; names the first broken (practice, seq) or says
OK, and what it verified."""

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
        # Every practice, not only the chains found: a practice whose chain was emptied has
        # no chain to find.
        ids = [options["practice"]] if options["practice"] is not None else audit.ids_to_verify()
        failures = []
        events = 0
        for practice_id in ids:
            result = audit.verify_chain(practice_id)
            events += result.events
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
            name = "system chain" if practice_id == audit.SYSTEM_CHAIN else "practice"
            if result.ok:
                self.stdout.write(
                    f"{name} {practice_id}: OK ({result.events} events, head seq {result.head_seq})"
                )
            else:
                failures.append(
                    f"{name} {practice_id}: BROKEN at seq {result.broken_at} ({result.reason})"
                )
        practices = sum(1 for practice_id in ids if practice_id != audit.SYSTEM_CHAIN)
        self.stdout.write(f"verified {practices} practice(s), {events} event(s)")
        if options["checkpoint"]:
            saved = json.loads(options["checkpoint"].read_text())
            for practice_id, head in saved["heads"].items():
                if not audit.head_present(int(practice_id), head["seq"], head["hash"]):
                    failures.append(
                        f"practice {practice_id}: checkpoint head seq {head['seq']} is missing"
                        " or changed"
                    )
            self.stdout.write(f"checked {len(saved['heads'])} head(s) of {options['checkpoint']}")
        else:
            self.stdout.write(
                "no checkpoint given: the removal of a chain's newest events cannot be detected"
                " without one (--checkpoint, a file written by audit_checkpoint and kept"
                " outside the database)"
            )
        for failure in failures:
            self.stdout.write(failure)
        if failures:
            raise CommandError(f"audit trail verification failed ({len(failures)} problem(s))")
        self.stdout.write("audit trail OK")
