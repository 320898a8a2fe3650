"""The key ring of a run: generated into a file readable by its owner only, or loaded."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import tor_async_couchdb as tac

KEYRING_FILE = "keyring.json"


def keyring_path(state_dir: Path) -> Path:
    """Where a run keeps its key ring under ``state_dir``."""
    return state_dir.resolve() / "keys" / KEYRING_FILE


def generate_keyring(path: Path) -> tac.KeyRing:
    """A new key ring of one key, written to ``path`` (mode 0600, folder 0700) and returned."""
    key_id = datetime.now(UTC).strftime("run-%Y%m%dT%H%M%S")
    stored = {"active": key_id, "keys": {key_id: tac.KeyRing.generate_secret()}, "retired": []}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created with its final mode, so the secret is never readable by others, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(stored, file)
        file.write("\n")
    return tac.KeyRing.from_file(path)


def load_or_generate(path: Path, *, fresh: bool) -> tuple[tac.KeyRing, str]:
    """The ring in ``$TOR_ASYNC_COUCHDB_KEYRING``, else in ``path``; a new one in ``path`` if
    ``fresh`` (a database made for this run) or none is there. Returns it and where it is
    kept, for the user. Raises ``tac.KeyRingError`` for a ring that cannot be read."""
    if os.environ.get("TOR_ASYNC_COUCHDB_KEYRING"):
        return tac.KeyRing.from_env(), "$TOR_ASYNC_COUCHDB_KEYRING"
    if fresh or not path.exists():
        return generate_keyring(path), f"{path} (generated for this run)"
    return tac.KeyRing.from_file(path), f"{path} (loaded)"


def codecs(protection: tac.Protection) -> list[tac.FieldCodec | tac.DocumentCodec]:
    """The codecs for ``tac.CouchDB(..., codecs=...)``: hash, encrypt, then sign."""
    return [*protection.field_codecs, *protection.document_codecs]
