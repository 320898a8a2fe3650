"""Merging what data centers wrote at once: sealing each write with the instance's clock, and
the hooks that let a merge check, read and sign protected leaves.

(The store also seals every write of a mergeable model with the client's clock; sealing here
first, with the instance's own clock, makes the stamps name the instance, and the store then
finds nothing left to seal.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import tor_async_couchdb as tac
from tor_async_couchdb import LeafHooks, seal

from .models import Fruit

M = TypeVar("M", bound=tac.Mergeable)

__all__ = ["LeafHooks", "leaf_hooks", "sealed"]


def sealed(model: M, clock: tac.HybridClock) -> M:
    """``model`` with its changes stamped as this instance's write (just before saving)."""
    seal(model, clock)
    return model


def leaf_hooks(db: tac.Database, signature: tac.SignatureCodec) -> LeafHooks:
    """Hooks for merging protected fruits: each leaf's signature is checked (a tampered one is
    quarantined, never merged), leaves are read through ``db``'s codecs, and what a resolution
    writes (the merge, its tombstones) is signed. The signing must be the same in every data
    center (HMAC under the shared ring), so that they all write the same merged revision."""

    def verify(stored: Mapping[str, Any]) -> None:
        signature.verify(stored)

    def decode(stored: Mapping[str, Any]) -> Mapping[str, Any]:
        plain = tac.Model.to_doc(db.mapper.model(Fruit, stored))  # decrypted, hashes kept
        return {**plain, "_rev": stored["_rev"]}

    def sign(doc: dict[str, Any], leaf: Mapping[str, Any]) -> dict[str, Any]:
        # Everything a resolution writes is signed: the merged body (which has no _id yet: the
        # signature covers it), and each tombstone and closure (``leaf``: the one it ends).
        return signature.sign({**doc, "_id": leaf["_id"]})

    return LeafHooks(verify=verify, decode=decode, sign=sign)
