"""A merged child a cluster only accepted (202) is confirmed before the merged leaves are
tombstoned, by fault injection through the mock transport."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import tor_async_couchdb as tac
from support.merge_models import FakeTime, Fruit, base_doc, branch
from tor_async_couchdb._merge import HybridClock, resolve_leaves
from tor_async_couchdb._reconcile._resolve import write_resolutions


def _json(status: int, body: Any) -> tac.Response:
    return tac.Response(status, {}, orjson.dumps(body))


class AcceptingCluster:
    """Answers a merged child's write with ``accepted: true``; the child then ``holds`` (is a
    leaf on every copy read) or was lost with the one copy that took it."""

    def __init__(self, *, holds: bool) -> None:
        self.holds = holds
        self.written: list[dict[str, Any]] = []
        self.reads = 0

    def __call__(self, request: tac.MockRequest) -> tac.Response:
        path, _, query = request.target.partition("?")
        if path.count("/") == 1:
            return _json(200, {"db_name": "db", "cluster": {"q": 2, "n": 3, "w": 2, "r": 2}})
        if path.endswith("/_bulk_docs"):
            docs = orjson.loads(request.body or b"{}")["docs"]
            self.written.extend(docs)
            return _json(201, [self._row(doc) for doc in docs])
        assert "open_revs=all" in query
        assert "r=3" in query
        self.reads += 1
        child = {"_id": "f", "_rev": "3-child", "_revisions": {"start": 3, "ids": ["child"]}}
        return _json(200, [{"ok": child}] if self.holds else [])

    def _row(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc.get("_deleted"):
            return {"ok": True, "id": doc["_id"], "rev": "3-tomb"}
        return {"ok": True, "id": doc["_id"], "rev": "3-child", "accepted": True}


def _leaves() -> list[dict[str, Any]]:
    base = {**base_doc(), "_id": "f"}
    one = branch(base, HybridClock("w0", now=FakeTime()), [("eat", 4)], FakeTime())
    two = branch(base, HybridClock("w1", now=FakeTime()), [("eat", 3)], FakeTime())
    return [{**one, "_id": "f"}, {**two, "_id": "f"}]


@pytest.mark.parametrize("holds", [True, False], ids=["held", "lost"])
async def test_an_accepted_merge_is_confirmed_before_its_leaves_are_tombstoned(
    holds: bool,
) -> None:
    leaves = _leaves()
    resolution = resolve_leaves(Fruit, leaves)
    assert resolution.merged is not None
    assert len(resolution.tombstones) == 1
    cluster = AcceptingCluster(holds=holds)
    async with tac.CouchDB("http://couch.test:5984", transport=tac.MockTransport(cluster)) as couch:
        (resolved,) = await write_resolutions(couch.database("db"), [(resolution, leaves)])
    assert cluster.reads >= 1  # read from all 3 copies
    tombstones = [doc for doc in cluster.written if doc.get("_deleted")]
    if holds:
        assert resolved.written == ("3-child", "3-tomb")
        assert len(tombstones) == 1
    else:  # nothing deleted: the leaves keep their changes for the next resolution
        assert (resolved.written, resolved.raced, tombstones) == ((), 1, [])
