"""Merge policies and the deterministic merge of conflicting leaf revisions (pure, no I/O).

Below the store in the layer order: the store can resolve on read with
:func:`resolve_leaves` without importing the reconciler, which lives in ``_reconcile``.
"""

from ._canonical import canonical_bytes, canonical_doc
from ._clock import HybridClock, Stamp, parse_stamp
from ._crdts import GCounter, ORSet, PNCounter
from ._errors import LEAF_PROBLEMS, BadLeafError, LeafProblem, UnsealedChangeError
from ._leaves import LeafHooks, Resolution, is_resolver_tombstone, resolve_leaves, winning_rev
from ._mergeable import (
    DeletePolicy,
    LastWriterWins,
    Max,
    Mergeable,
    Min,
    ReadPolicy,
    Stamps,
    seal,
)

__all__ = [
    "LEAF_PROBLEMS",
    "BadLeafError",
    "DeletePolicy",
    "GCounter",
    "HybridClock",
    "LastWriterWins",
    "LeafHooks",
    "LeafProblem",
    "Max",
    "Mergeable",
    "Min",
    "ORSet",
    "PNCounter",
    "ReadPolicy",
    "Resolution",
    "Stamp",
    "Stamps",
    "UnsealedChangeError",
    "canonical_bytes",
    "canonical_doc",
    "is_resolver_tombstone",
    "parse_stamp",
    "resolve_leaves",
    "seal",
    "winning_rev",
]
