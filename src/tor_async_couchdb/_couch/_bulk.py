"""Answers of ``_bulk_docs``: one :class:`BulkResult` per document, matched by id."""

from __future__ import annotations

from typing import Any, NamedTuple

from .._exceptions import HTTPStatusError, ProtocolError, status_error

__all__ = ["BulkResult", "match_bulk", "match_replicated"]

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

    (A named tuple: a bulk answer makes thousands, and a tuple is the cheapest immutable
    record to build, measured at a third of a frozen dataclass's cost.)
    """

    id: str
    rev: str | None
    error: HTTPStatusError | None = None

    @property
    def ok(self) -> bool:
        """Whether this document was saved."""
        return self.error is None


_new_tuple = tuple.__new__


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
    # The usual case, and CouchDB's promise: every document saved, in request order. One
    # pass builds those results; anything else takes the general path below.
    results: list[BulkResult] = []
    append = results.append
    for item, doc_id in zip(answer, ids, strict=True):
        if type(item) is not dict or item.get("id") != doc_id or doc_id is None:
            break
        if "error" in item:
            break
        # tuple.__new__ directly: a third cheaper than the named tuple's own __new__.
        append(_new_tuple(BulkResult, (doc_id, item.get("rev"), None)))
    else:
        return results
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
        return BulkResult(doc_id, item.get("rev"))
    status = _BULK_ERROR_STATUS.get(str(error), 500)
    exception = status_error(
        status, method="POST", url=url, error=str(error), reason=item.get("reason"), doc_id=doc_id
    )
    return BulkResult(doc_id, None, exception)
