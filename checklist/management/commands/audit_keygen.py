"""Creates an Ed25519 key pair for the signed audit checkpoints."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from checklist import checkpoints


class Command(BaseCommand):
    help = (
        "Create an Ed25519 key pair for audit_checkpoint: the private key (PEM, mode 600) for"
        " the checkpoint job only, the public key for AUDIT_CHECKPOINT_PUBLIC_KEY."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("private_key", type=Path, help="where to write the private key")
        parser.add_argument(
            "--public-key", type=Path, help="also write the public key (base64) to this file"
        )
        parser.add_argument(
            "--if-missing", action="store_true", help="do nothing if the private key exists"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["private_key"]
        if path.exists():
            if options["if_missing"]:
                return
            raise CommandError(f"{path} exists: not overwritten")
        pem, public = checkpoints.new_key_pair()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(pem)
        if options["public_key"]:
            options["public_key"].write_text(public + "\n")
        self.stdout.write(f"private key (for the checkpoint job only): {path}")
        self.stdout.write(f"AUDIT_CHECKPOINT_PUBLIC_KEY={public}")
