"""The store's client: the raw :class:`tor_async_couchdb._couch.CouchDB` whose database handles
speak in models, and which hands every handle the codecs it was given."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .._config import Auth, Limits, RetryPolicy, Timeouts
from .._couch import CouchDB as RawCouchDB
from .._couch import RequestRecord
from .._couch._urls import check_db_name
from .._merge import HybridClock
from .._transport import Transport
from ._database import Database
from ._hot import HotDocuments
from ._mapper import Codec, Mapper
from ._merging import Merging
from ._quarantine import Quarantine, StoreStats

__all__ = ["CouchDB"]


class CouchDB(RawCouchDB):
    """An asynchronous client of one CouchDB server (or cluster behind one URL).

    Takes every argument of the raw client (``url``, ``auth``, ``timeouts``, ``limits``,
    ``retry``, ``verify``, ``client_cert``, ``transport``, ``on_request``) and ``codecs``: the
    field and document codecs (hashing, encryption, signing) every database handle applies to
    models, in the order they encode (see :mod:`tor_async_couchdb._models._codecs`): a
    :class:`Protection` bundle as it is, or a list. ``quarantine=True``: collection reads
    (``query``, ``all``, ``find_models``, ``get_many``...) skip tampered documents, logging
    each at ERROR and counting them in :meth:`stats` (``quarantined``), instead of raising
    :class:`TamperedDocument` (see :mod:`._quarantine`). ``clock``: the :class:`HybridClock`
    that seals every write of a mergeable model (one with a random node id if not given; see
    ``docs/multi-master.md``).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:5984",
        *,
        auth: Auth | tuple[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        client_cert: str | tuple[str, str] | None = None,
        transport: Transport | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
        codecs: Iterable[Codec] = (),
        quarantine: bool = False,
        clock: HybridClock | None = None,
    ) -> None:
        self._merging = Merging(clock)
        self._mapper = Mapper(codecs, merging=self._merging)  # checked before any connection
        self._quarantine = quarantine
        self._quarantined = Quarantine()  # the count, shared by every handle
        self._copies: dict[str, int] = {}
        self._hot = HotDocuments()
        super().__init__(
            url,
            auth=auth,
            timeouts=timeouts,
            limits=limits,
            retry=retry,
            verify=verify,
            client_cert=client_cert,
            transport=transport,
            on_request=on_request,
        )

    def database(
        self,
        name: str,
        *,
        codecs: Iterable[Codec] | None = None,
        quarantine: bool | None = None,
    ) -> Database:
        """A handle of database ``name`` (no I/O), with models. ``codecs`` and ``quarantine``
        replace the client's for this handle. Raises :class:`InvalidNameError`."""
        mapper = self._mapper if codecs is None else Mapper(codecs, merging=self._merging)
        quarantined = self._quarantine if quarantine is None else quarantine
        return Database(
            self,
            check_db_name(name),
            mapper=mapper,
            copies=self._copies,
            hot=self._hot,
            quarantine=self._quarantined if quarantined else None,
        )

    def stats(self) -> StoreStats:
        """A snapshot of the counters: the raw client's (requests, errors, retries, bytes) and
        ``quarantined``, the tampered documents skipped by collection reads."""
        raw = super().stats()
        fields = {name: getattr(raw, name) for name in raw.__dataclass_fields__}
        return StoreStats(**fields, quarantined=self._quarantined.count)
