"""``_changes``: one-shot and long-poll reads, and the continuous feed that reconnects.

Sequences are opaque (CouchDB 3 makes strings of them): they are passed back as they came,
never parsed, compared or incremented.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

from .._config import backoff_delay
from .._exceptions import HTTPStatusError, TransportError
from .._ids import check_doc_id
from .._json import dumps, loads
from ._engine import Engine
from ._urls import query_string

__all__ = ["follow_changes", "read_changes"]

logger = logging.getLogger("tor_async_couchdb")


async def read_changes(
    engine: Engine,
    base: str,
    *,
    since: str | int = 0,
    limit: int | None = None,
    include_docs: bool = False,
    style: Literal["main_only", "all_docs"] = "main_only",
    conflicts: bool = False,
    descending: bool = False,
    doc_ids: Sequence[str] | None = None,
    filter: str | None = None,
    selector: Mapping[str, Any] | None = None,
    longpoll: bool = False,
    timeout: float | None = None,  # noqa: ASYNC109 - CouchDB's parameter, for the server
    heartbeat: float = 10.0,
    params: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """What :meth:`Database.changes` does (its docstring says how): the one copy of it."""
    query = _changes_query(
        since=since,
        limit=limit,
        include_docs=include_docs,
        style=style,
        conflicts=conflicts,
        descending=descending,
        doc_ids=doc_ids,
        filter_name=filter,
        selector=selector,
    )
    if longpoll:
        query["feed"] = "longpoll"
        if timeout is not None:
            query["timeout"] = int(timeout * 1000)
        else:
            query["heartbeat"] = int(heartbeat * 1000)
    query.update(params or {})
    body = _changes_body(doc_ids, selector)
    method = "POST" if body is not None else "GET"
    target = base + "/_changes" + query_string(query)
    if longpoll:
        answer = await _wait_for_changes(engine, method, target, body, wait=timeout, beat=heartbeat)
    else:
        answer = await engine.json(method, target, body, safe=True)
    results: list[dict[str, Any]] = answer["results"]
    last = answer.get("last_seq")
    if last is None:
        last = results[-1]["seq"] if results else since
    return results, str(last)


async def _wait_for_changes(
    engine: Engine, method: str, target: str, body: bytes | None, *, wait: float | None, beat: float
) -> Any:
    # A long poll outlives the client's read timeout on purpose: bound the silence by the
    # heartbeat (or the server's own timeout) instead.
    silence = (wait + 10.0) if wait is not None else beat * 3
    async with engine.stream(method, target, body, read_timeout=silence) as stream:
        raw = await stream.read()
    return loads(raw, method=method, url=engine.url_of(target))


def _changes_query(
    *,
    since: str | int,
    limit: int | None,
    include_docs: bool,
    style: str,
    conflicts: bool,
    descending: bool,
    doc_ids: Sequence[str] | None,
    filter_name: str | None,
    selector: Mapping[str, Any] | None,
) -> dict[str, Any]:
    query: dict[str, Any] = {"since": str(since)}
    if limit is not None:
        query["limit"] = limit
    if include_docs:
        query["include_docs"] = True
    if style != "main_only":
        query["style"] = style
    if conflicts:
        query["conflicts"] = True
    if descending:
        query["descending"] = True
    if doc_ids is not None:
        query["filter"] = "_doc_ids"
    elif selector is not None:
        query["filter"] = "_selector"
    elif filter_name is not None:
        query["filter"] = filter_name
    return query


def _changes_body(
    doc_ids: Sequence[str] | None, selector: Mapping[str, Any] | None
) -> bytes | None:
    if doc_ids is not None:
        return dumps({"doc_ids": [check_doc_id(doc_id) for doc_id in doc_ids]})
    if selector is not None:
        return dumps({"selector": dict(selector)}, what="selector")
    return None


async def follow_changes(
    engine: Engine,
    base: str,
    name: str,
    *,
    since: str | int = "now",
    include_docs: bool = False,
    style: Literal["main_only", "all_docs"] = "main_only",
    conflicts: bool = False,
    doc_ids: Sequence[str] | None = None,
    filter: str | None = None,
    selector: Mapping[str, Any] | None = None,
    heartbeat: float = 10.0,
    reconnect_delay: float = 0.5,
    max_reconnect_delay: float = 30.0,
    dedupe_window: int = 10_000,
) -> AsyncGenerator[dict[str, Any], None]:
    """What :meth:`Database.feed` does (its docstring says how): the one copy of it."""
    query = _changes_query(
        since=since,
        limit=None,
        include_docs=include_docs,
        style=style,
        conflicts=conflicts,
        descending=False,
        doc_ids=doc_ids,
        filter_name=filter,
        selector=selector,
    )
    if query["since"] == "now":
        # Pin "now" to a sequence: resuming from "now" after a drop would skip the changes
        # made while the feed reconnected.
        query["since"] = str((await engine.json("GET", base))["update_seq"])
    query["feed"] = "continuous"
    query["heartbeat"] = int(heartbeat * 1000)
    body = _changes_body(doc_ids, selector)
    method = "POST" if body is not None else "GET"
    failures = 0
    yielded = _Yielded(dedupe_window)
    while True:
        target = base + "/_changes" + query_string(query)
        try:
            async with engine.stream(method, target, body, read_timeout=heartbeat * 3) as stream:
                async for line in stream.aiter_lines():
                    if not line.strip():
                        continue
                    change = loads(line, method=method, url=engine.url_of(target))
                    if "seq" not in change:
                        continue  # the closing {"last_seq": ...} of a feed that ended
                    failures = 0
                    query["since"] = str(change["seq"])
                    if yielded.first_time(change):
                        yield change
        except (TransportError, HTTPStatusError) as error:
            if isinstance(error, HTTPStatusError) and not (
                error.status >= 500 or error.status == 429
            ):
                raise
            failures += 1
            delay = backoff_delay(failures, reconnect_delay, max_reconnect_delay, jitter=False)
            logger.warning(
                "changes feed of %s interrupted (%s); resuming from %s in %.1f s",
                name,
                error,
                query["since"],
                delay,
            )
            await asyncio.sleep(delay)
        else:
            # The server ended the feed (it should not): resume where it left off.
            failures += 1
            await asyncio.sleep(min(max_reconnect_delay, reconnect_delay))


class _Yielded:
    """The revisions a feed has yielded, per document id, for the last ``window`` ids.

    A cluster's sequences are per shard copy: a feed resumed after a reconnect (or a shard
    copy that took over) may be sent changes it already had. A change whose id and revisions
    equal the last ones yielded for that id is one of those, and is not yielded again.
    """

    __slots__ = ("_last", "_window")

    def __init__(self, window: int) -> None:
        self._window = window
        self._last: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def first_time(self, change: Mapping[str, Any]) -> bool:
        """Whether ``change`` was not yielded yet (and remember it, if so)."""
        doc_id = change.get("id")
        if not isinstance(doc_id, str) or self._window <= 0:
            return True
        revs = tuple(str(item.get("rev")) for item in change.get("changes") or ())
        if self._last.get(doc_id) == revs:
            return False
        self._last[doc_id] = revs
        self._last.move_to_end(doc_id)
        if len(self._last) > self._window:
            self._last.popitem(last=False)
        return True
