"""Quarantine of tampered documents met by collection reads.

By default a collection read (``query``, ``query_range``, ``find_models``, ``all``,
``get_many``, ``most_recent``, ``rotate``'s pages) that meets a document failing its signature
or a ciphertext raises :class:`TamperedDocument`, like ``get`` does, and the iteration stops.
A client or handle made with ``quarantine=True`` instead logs the document at ERROR, counts it
(``couch.stats().quarantined``) and goes on with the next one: one edited document no longer
takes a whole listing down, and it is still never returned.

What is quarantined: :class:`TamperedDocument` (and its :class:`UnsignedDocument`,
:class:`UnprotectedField`, :class:`DecryptionFailed`) and :class:`MalformedEnvelope`, the
errors of a document edited around the library. Key ring errors (an unknown or retired key
id) still raise: they come from the configuration, would hit every document alike, and
skipping them all would empty every listing in silence. ``get`` of one document always raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .._couch import ClientStats
from .._exceptions import MalformedEnvelope, TamperedDocument
from .._models import Model

__all__ = ["QUARANTINED", "Quarantine", "StoreStats"]

logger = logging.getLogger("tor_async_couchdb.protect")

# What a collection read in quarantine mode skips (see the module).
QUARANTINED = (TamperedDocument, MalformedEnvelope)


@dataclass(frozen=True, slots=True)
class StoreStats(ClientStats):
    """The client's counters (:class:`ClientStats`) and ``quarantined``: the tampered documents
    that collection reads in quarantine mode skipped."""

    quarantined: int = 0


class Quarantine:
    """The count of quarantined documents, shared by the handles of one client."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __repr__(self) -> str:
        return f"Quarantine(count={self.count})"

    def skip(
        self, model: type[Model], database: str, error: TamperedDocument | MalformedEnvelope
    ) -> None:
        """Count and log one skipped document (its id and the error; never a value)."""
        self.count += 1
        logger.error(
            "quarantined a %s document of database %r, skipped: %s (%s)",
            model.__qualname__,
            database,
            error,
            type(error).__name__,
            extra={"doc_id": error.doc_id, "field": error.field},
        )

    def skipper(
        self, database: str
    ) -> Callable[[type[Model], TamperedDocument | MalformedEnvelope], None]:
        """:meth:`skip` for the documents of ``database``."""

        def skip(model: type[Model], error: TamperedDocument | MalformedEnvelope) -> None:
            self.skip(model, database, error)

        return skip
