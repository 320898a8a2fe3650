"""The reconciler (ops layer): resolves replication conflicts by the models' merge policies."""

from ._checkpoint import Checkpoint, LocalDocCheckpoint, MemoryCheckpoint
from ._reconciler import Backoff, Reconciler, ReconcilerMetrics
from ._resolve import Resolved, fetch_leaves, fetch_many_leaves, resolve_document, resolve_many

__all__ = [
    "Backoff",
    "Checkpoint",
    "LocalDocCheckpoint",
    "MemoryCheckpoint",
    "Reconciler",
    "ReconcilerMetrics",
    "Resolved",
    "fetch_leaves",
    "fetch_many_leaves",
    "resolve_document",
    "resolve_many",
]
