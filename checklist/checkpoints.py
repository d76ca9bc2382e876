"""Signed checkpoints of the audit chains' heads, kept outside the database.

`manage.py audit_checkpoint` signs each chain's head (practice, seq, hash, time) with Ed25519
and appends one JSON line per chain to the external store (settings.AUDIT_CHECKPOINT_STORE: a
directory, one file per day, or one file; e.g. a WORM volume). The private key stays with that
job (`--key-file` or AUDIT_CHECKPOINT_PRIVATE_KEY_FILE given to the job only); settings hold
only the public key (AUDIT_CHECKPOINT_PUBLIC_KEY), so whoever can verify cannot forge.
`audit_verify` checks each chain against the newest checkpoint whose signature verifies: a
superuser who switches the triggers off and cuts off the newest events, or recomputes a whole
chain, leaves a chain that verifies on its own but no longer holds the signed head.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

PRIVATE_KEY_ENV = "AUDIT_CHECKPOINT_PRIVATE_KEY_FILE"


@dataclass(frozen=True)
class Checkpoint:
    practice_id: int
    seq: int
    hash: str
    taken_at: str  # ISO 8601, UTC
    signature: str = ""  # base64 of the Ed25519 signature of `message`

    @property
    def message(self) -> bytes:
        return json.dumps(
            {"practice": self.practice_id, "seq": self.seq, "hash": self.hash, "at": self.taken_at},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    def line(self) -> str:
        return json.dumps(
            {
                "practice": self.practice_id,
                "seq": self.seq,
                "hash": self.hash,
                "at": self.taken_at,
                "sig": self.signature,
            },
            sort_keys=True,
        )


# --- keys ----------------------------------------------------------------------------------


def new_key_pair() -> tuple[bytes, str]:
    """A private key (PEM) and its public key (base64 of the 32 raw bytes)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, public_key_text(key.public_key())


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds no Ed25519 private key")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    """base64 of the 32 raw bytes, or a PEM public key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("AUDIT_CHECKPOINT_PUBLIC_KEY is no Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def configured_public_key() -> Ed25519PublicKey | None:
    text = settings.AUDIT_CHECKPOINT_PUBLIC_KEY
    return load_public_key(text) if text else None


# --- signing and the store -----------------------------------------------------------------


def sign(
    key: Ed25519PrivateKey, practice_id: int, seq: int, hash_: str, at: datetime
) -> Checkpoint:
    unsigned = Checkpoint(practice_id, seq, hash_, at.isoformat())
    signature = base64.b64encode(key.sign(unsigned.message)).decode()
    return Checkpoint(practice_id, seq, hash_, unsigned.taken_at, signature)


def store_path() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_STORE)


def append(checkpoints: list[Checkpoint], at: datetime, store: Path | None = None) -> Path:
    """Appends the lines to the store: a directory gets one file per day (UTC), any other
    path is one append-only file. Returns the file written."""
    store = store or store_path()
    if store.suffix == "":
        store.mkdir(parents=True, exist_ok=True)
        target = store / f"checkpoints-{at:%Y-%m-%d}.jsonl"
    else:
        store.parent.mkdir(parents=True, exist_ok=True)
        target = store
    with target.open("a", encoding="utf-8") as out:  # append only: never rewritten
        for checkpoint in checkpoints:
            out.write(checkpoint.line() + "\n")
    return target


def _lines(store: Path) -> list[str]:
    files = sorted(store.glob("*.jsonl")) if store.is_dir() else [store] if store.exists() else []
    return [line for path in files for line in path.read_text(encoding="utf-8").splitlines()]


def _parse(line: str) -> Checkpoint | None:
    try:
        data: dict[str, Any] = json.loads(line)
        return Checkpoint(
            int(data["practice"]),
            int(data["seq"]),
            str(data["hash"]),
            str(data["at"]),
            str(data["sig"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def verifies(checkpoint: Checkpoint, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class StoreReading:
    newest: dict[int, Checkpoint]  # per practice, among the lines whose signature verifies
    rejected: int  # lines that are unreadable or whose signature does not verify


def read_store(key: Ed25519PublicKey, store: Path | None = None) -> StoreReading:
    newest: dict[int, Checkpoint] = {}
    rejected = 0
    for line in _lines(store or store_path()):
        if not line.strip():
            continue
        checkpoint = _parse(line)
        if checkpoint is None or not verifies(checkpoint, key):
            rejected += 1
            continue
        known = newest.get(checkpoint.practice_id)
        if known is None or (checkpoint.seq, checkpoint.taken_at) > (known.seq, known.taken_at):
            newest[checkpoint.practice_id] = checkpoint
    return StoreReading(newest, rejected)


def problem(checkpoint: Checkpoint, head_seq: int, hash_at_seq: str | None) -> str:
    """What the chain lacks against its checkpoint, or "" when it holds the signed head."""
    if head_seq < checkpoint.seq:
        missing = (
            f"seq {checkpoint.seq}"
            if head_seq + 1 == checkpoint.seq
            else f"seq {head_seq + 1}-{checkpoint.seq}"
        )
        return (
            f"shortened: the chain ends at seq {head_seq}, the checkpoint of"
            f" {checkpoint.taken_at} signed seq {checkpoint.seq}; missing {missing}"
        )
    if hash_at_seq != checkpoint.hash:
        return (
            f"re-hashed: event seq {checkpoint.seq} differs from the checkpoint of"
            f" {checkpoint.taken_at} (signed hash {checkpoint.hash[:12]}...)"
        )
    return ""
