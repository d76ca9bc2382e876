"""Signs each chain's head and appends it to the external checkpoint store."""

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from checklist import audit, checkpoints
from checklist.models import AuditCheckpoint


class Command(BaseCommand):
    help = (
        "Sign the head (practice, seq, hash, time) of every audit chain with Ed25519 and append"
        " it to the checkpoint store (AUDIT_CHECKPOINT_STORE)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--key-file",
            type=Path,
            help=f"the private key (PEM); default: the file named by {checkpoints.PRIVATE_KEY_ENV}",
        )
        parser.add_argument(
            "--store", type=Path, help="a directory or file; default: AUDIT_CHECKPOINT_STORE"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key_file = options["key_file"] or os.environ.get(checkpoints.PRIVATE_KEY_ENV)
        if not key_file:
            raise CommandError(
                f"no private key: give --key-file or set {checkpoints.PRIVATE_KEY_ENV}"
                " (for this job only)"
            )
        key = checkpoints.load_private_key(Path(key_file))
        public = checkpoints.configured_public_key()
        if public is not None and checkpoints.public_key_text(
            public
        ) != checkpoints.public_key_text(key.public_key()):
            raise CommandError("the key does not match AUDIT_CHECKPOINT_PUBLIC_KEY")
        now = timezone.now()
        signed = [
            checkpoints.sign(key, practice_id, seq, hash_, now)
            for practice_id, (seq, hash_) in sorted(audit.chain_heads().items())
        ]
        target = checkpoints.append(signed, now, options["store"])
        AuditCheckpoint.objects.bulk_create(
            AuditCheckpoint(
                chain=c.practice_id, seq=c.seq, hash=c.hash, taken_at=now, signature=c.signature
            )
            for c in signed
        )
        self.stdout.write(f"signed {len(signed)} chain head(s), appended to {target}")
