"""Recomputes the audit chain of every practice and checks it against the newest signed
checkpoint in the external store; names the first broken (practice, seq), what a checkpoint
misses, or says OK, and what it verified."""

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from checklist import audit, checkpoints
from checklist.models import AuditEvent, AuditVerification
from checklist.progress import Progress

BATCH = 5000


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains against the newest signed checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--practice", type=int, help="verify only this practice's chain")
        parser.add_argument(
            "--store",
            type=Path,
            help="the checkpoint store (directory or file); default: AUDIT_CHECKPOINT_STORE",
        )
        parser.add_argument(
            "--allow-no-checkpoint",
            action="store_true",
            help="succeed although a chain has no signed checkpoint to check against",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Every practice, not only the chains found: a practice whose chain was emptied has
        # no chain to find.
        ids = [options["practice"]] if options["practice"] is not None else audit.ids_to_verify()
        failures = []
        events = 0
        # The bar counts events; its total costs a count, so only on a terminal.
        total = (
            AuditEvent.objects.filter(practice_id__in=ids).count() if sys.stderr.isatty() else None
        )
        progress = Progress("verifying audit events", total, unit="events")
        for practice_id in ids:
            result = audit.verify_chain(practice_id, batch=BATCH, on_batch=progress.update)
            progress.update(result.events % BATCH)  # the chain's last, partial batch
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
        progress.close()
        practices = sum(1 for practice_id in ids if practice_id != audit.SYSTEM_CHAIN)
        self.stdout.write(f"verified {practices} practice(s), {events} event(s)")
        failures += self._check_checkpoints(ids, options)
        for failure in failures:
            self.stdout.write(failure)
        if failures:
            raise CommandError(f"audit trail verification failed ({len(failures)} problem(s))")
        self.stdout.write("audit trail OK")

    def _check_checkpoints(self, ids: list[int], options: dict[str, Any]) -> list[str]:
        """Each chain against the newest checkpoint in the store whose signature verifies:
        a shortened, truncated or re-hashed chain no longer holds the signed head."""
        key = checkpoints.configured_public_key()
        store = options["store"] or checkpoints.store_path()
        reading = checkpoints.read_store(key, store) if key is not None else None
        if reading is not None and reading.rejected:
            self.stdout.write(
                f"{reading.rejected} checkpoint line(s) in {store} rejected: the signature does"
                " not verify with AUDIT_CHECKPOINT_PUBLIC_KEY (or the line is unreadable)"
            )
        failures, unchecked = [], []
        heads = audit.chain_heads()
        if reading is not None and not options["practice"]:
            # A signed chain whose events and practice are both gone is found only here.
            ids = sorted(set(ids) | set(reading.newest))
        for practice_id in ids:
            checkpoint = reading.newest.get(practice_id) if reading is not None else None
            if checkpoint is None:
                if practice_id in heads:  # an empty chain has no head to lose
                    unchecked.append(practice_id)
                continue
            head_seq = heads.get(practice_id, (0, ""))[0]
            hash_at = audit.hash_at(practice_id, checkpoint.seq)
            problem = checkpoints.problem(checkpoint, head_seq, hash_at)
            if problem:
                failures.append(f"practice {practice_id}: BROKEN against checkpoint ({problem})")
            else:
                self.stdout.write(
                    f"practice {practice_id}: holds the checkpoint of {checkpoint.taken_at}"
                    f" (seq {checkpoint.seq})"
                )
        if unchecked:
            why = (
                "no AUDIT_CHECKPOINT_PUBLIC_KEY configured"
                if key is None
                else f"no signed checkpoint in {store}"
            )
            listed = ", ".join(str(p) for p in unchecked)
            self.stdout.write(
                f"no checkpoint for chain(s) {listed} ({why}): the removal of a chain's newest"
                " events cannot be detected without one (run audit_checkpoint regularly)"
            )
            if not options["allow_no_checkpoint"]:
                failures.append(
                    f"no checkpoint for chain(s) {listed} (--allow-no-checkpoint to accept)"
                )
        return failures
