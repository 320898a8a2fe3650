"""Answers of ``_bulk_docs``: one :class:`BulkResult` per document, matched by id."""

from __future__ import annotations

from itertools import repeat
from operator import contains
from typing import Any, NamedTuple

from .._exceptions import HTTPStatusError, InvalidInputError, ProtocolError, status_error

__all__ = ["BulkResult", "check_bulk_ids", "match_bulk", "match_replicated"]

_BULK_ERROR_STATUS = {
    "conflict": 409,
    "forbidden": 403,
    "unauthorized": 401,
    "not_found": 404,
    "bad_request": 400,
    "doc_validation": 400,
}


class BulkResult(NamedTuple):
    """The outcome of one document of a ``_bulk_docs`` request: saved (``rev`` set), or
    ``error`` (a :class:`HTTPStatusError`, e.g. :class:`Conflict`) and nothing written.

    ``accepted`` is CouchDB 3's ``"accepted": true``: a cluster took the write on fewer copies
    than its write quorum. Such a write is not yet committed: a concurrent write on the other
    copies may win over it, and it may vanish (the store confirms such writes before it reports
    them saved; see ``docs/clusters.md``). ``committed`` is a write the quorum took.

    (A named tuple: a bulk answer makes thousands, and a tuple is the cheapest immutable
    record to build, measured at a third of a frozen dataclass's cost.)
    """

    id: str
    rev: str | None
    error: HTTPStatusError | None = None
    accepted: bool = False

    @property
    def ok(self) -> bool:
        """Whether this document was written (committed, or only accepted)."""
        return self.error is None

    @property
    def committed(self) -> bool:
        """Whether the write quorum took this write."""
        return self.error is None and not self.accepted


_new_tuple = tuple.__new__
_ID_TYPES = frozenset({str, type(None)})


def check_bulk_ids(ids: list[Any]) -> list[str | None]:
    """``ids`` (the ``_id`` of each document of a bulk request, None for none), checked: each
    a str, none twice. Raises :class:`InvalidInputError`.

    The usual case is settled by set operations, in C: a bulk request holds thousands of ids,
    and a Python loop over them cost a tenth of the request's client CPU.
    """
    kinds = set(map(type, ids))
    if kinds <= _ID_TYPES:
        unnamed = ids.count(None) if type(None) in kinds else 0  # (exact str and None only)
        if len(set(ids)) + max(unnamed - 1, 0) == len(ids):
            return ids
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id is None:
            continue
        if type(doc_id) is not str:
            raise InvalidInputError("every _id in a bulk request must be a str")
        if doc_id in seen:
            raise InvalidInputError(f"a bulk request holds _id {doc_id!r} twice")
        seen.add(doc_id)
    return ids


def _all_saved_in_order(ids: list[str | None], answer: list[Any]) -> list[BulkResult] | None:
    """The results of the usual answer, and CouchDB's promise: every document saved (a
    ``rev``, no ``error``, nothing only ``accepted``), in request order, each named. None for
    any other answer.

    Each test is one pass in C over the answer (a Python loop over a thousand answer items, as
    before, cost as much as encoding the request).
    """
    if None in ids:
        return None
    try:
        answered = list(map(dict.get, answer, repeat("id")))
    except TypeError:  # an item that is not a dict
        return None
    if answered != ids:
        return None
    if any(map(contains, answer, repeat("error"))) or any(
        map(contains, answer, repeat("accepted"))
    ):
        return None
    revs = list(map(dict.get, answer, repeat("rev")))
    # tuple.__new__ directly: a third cheaper than the named tuple's own __new__.
    return list(map(_new_tuple, repeat(BulkResult), zip(ids, revs, repeat(None), repeat(False))))


def match_replicated(ids: list[str | None], answer: Any, url: str) -> list[BulkResult]:
    # With new_edits=false CouchDB lists only the documents that failed.
    if not isinstance(answer, list):
        raise ProtocolError("a _bulk_docs answer must be a list", method="POST", url=url)
    failed = {result.id: result for result in (_bulk_result(item, url) for item in answer)}
    return [failed.get(str(doc_id), BulkResult(str(doc_id), None)) for doc_id in ids]


def match_bulk(ids: list[str | None], answer: Any, url: str) -> list[BulkResult]:
    if not isinstance(answer, list) or len(answer) != len(ids):
        raise ProtocolError(
            "a _bulk_docs answer must list one result per document", method="POST", url=url
        )
    saved = _all_saved_in_order(ids, answer)
    if saved is not None:
        return saved
    results = [_bulk_result(item, url) for item in answer]
    if all(
        doc_id is None or result.id == doc_id for result, doc_id in zip(results, ids, strict=True)
    ):
        return results
    # Some servers (pouchdb-server) reorder neighbours: match by id. Documents sent without
    # an id can only be matched by their order among the unnamed results.
    named = {doc_id for doc_id in ids if doc_id is not None}
    by_id = {result.id: result for result in results if result.id in named}
    unnamed = iter([result for result in results if result.id not in named])
    matched = []
    for doc_id in ids:
        result = by_id.get(doc_id) if doc_id is not None else next(unnamed, None)
        if result is None:
            raise ProtocolError(
                f"the _bulk_docs answer has no result for document {doc_id!r}",
                method="POST",
                url=url,
            )
        matched.append(result)
    return matched


def _bulk_result(item: Any, url: str) -> BulkResult:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ProtocolError("a _bulk_docs result has no id", method="POST", url=url)
    doc_id = item["id"]
    error = item.get("error")
    if error is None:
        return BulkResult(doc_id, item.get("rev"), None, item.get("accepted") is True)
    status = _BULK_ERROR_STATUS.get(str(error), 500)
    exception = status_error(
        status, method="POST", url=url, error=str(error), reason=item.get("reason"), doc_id=doc_id
    )
    return BulkResult(doc_id, None, exception)
