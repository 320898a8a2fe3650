"""The four clients under test, each behind the same small interface, each used idiomatically."""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import quote, urlsplit

import aiocouch
import aiohttp
import orjson

import tor_async_couchdb as tac
from bench.rawhttp import RawClient

DESIGN = "bench"
VIEW = "by_k"


class Client:
    """What the benchmark calls; one database for documents, one for views, one for bulk."""

    name = "?"

    def __init__(self, url: str, auth: tuple[str, str], dbs: tuple[str, str, str]) -> None:
        self.url = url
        self.auth = auth
        self.docs_db, self.view_db, self.bulk_db = dbs

    async def start(self) -> None:
        """Open the client (no I/O needed)."""

    async def get(self, doc_id: str) -> dict[str, Any]:
        raise NotImplementedError

    async def create(self, doc: dict[str, Any]) -> None:
        raise NotImplementedError

    async def update(self, doc_id: str, n: int) -> None:
        raise NotImplementedError

    async def view_key(self, key: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def view_range(self, start: str, end: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def bulk(self, docs: list[dict[str, Any]]) -> int:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class Ours(Client):
    name = "ours"

    async def start(self) -> None:
        self.couch = tac.CouchDB(self.url, auth=self.auth)
        self.docs = self.couch.database(self.docs_db)
        self.views = self.couch.database(self.view_db)
        self.bulks = self.couch.database(self.bulk_db)

    async def get(self, doc_id: str) -> dict[str, Any]:
        return await self.docs.get_doc(doc_id)

    async def create(self, doc: dict[str, Any]) -> None:
        await self.docs.put_doc(doc)

    async def update(self, doc_id: str, n: int) -> None:
        doc = await self.docs.get_doc(doc_id)
        doc["n"] = n
        await self.docs.put_doc(doc)

    async def view_key(self, key: str) -> list[dict[str, Any]]:
        return [row async for row in self.views.view(DESIGN, VIEW, key=key, include_docs=True)]

    async def view_range(self, start: str, end: str) -> list[dict[str, Any]]:
        rows = self.views.view(
            DESIGN, VIEW, startkey=start, endkey=end, include_docs=True, limit=100, page_size=101
        )
        return [row async for row in rows]

    async def bulk(self, docs: list[dict[str, Any]]) -> int:
        results = await self.bulks.bulk_docs(docs)
        return sum(1 for result in results if result.ok)

    async def aclose(self) -> None:
        await self.couch.aclose()


class AioCouch(Client):
    name = "aiocouch"

    async def start(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # aiocouch uses aiohttp.BasicAuth
            self.couch = aiocouch.CouchDB(self.url, user=self.auth[0], password=self.auth[1])
        # pouchdb-server answers text/plain unless asked for JSON, and aiohttp's .json() then
        # refuses the body; CouchDB answers application/json anyway. aiocouch passes headers=
        # itself, so the header is added to its session after construction.
        self.couch._server._http_session.headers["Accept"] = "application/json"
        self.docs = await self.couch[self.docs_db]
        self.views = await self.couch[self.view_db]
        self.bulks = await self.couch[self.bulk_db]

    async def get(self, doc_id: str) -> dict[str, Any]:
        doc = await self.docs[doc_id]
        data: dict[str, Any] = doc.data or {}
        return data

    async def create(self, doc: dict[str, Any]) -> None:
        data = dict(doc)
        new = await self.docs.create(data.pop("_id"), data=data)  # HEAD, then save() PUTs
        await new.save()

    async def update(self, doc_id: str, n: int) -> None:
        doc = await self.docs[doc_id]
        doc["n"] = n
        await doc.save()

    async def view_key(self, key: str) -> list[dict[str, Any]]:
        response = await self.views.view(DESIGN, VIEW).get(
            key=orjson.dumps(key).decode(), include_docs=True
        )
        return [doc.data or {} for doc in response.docs()]

    async def view_range(self, start: str, end: str) -> list[dict[str, Any]]:
        response = await self.views.view(DESIGN, VIEW).get(
            startkey=orjson.dumps(start).decode(),
            endkey=orjson.dumps(end).decode(),
            include_docs=True,
            limit=100,
        )
        return [doc.data or {} for doc in response.docs()]

    async def bulk(self, docs: list[dict[str, Any]]) -> int:
        async with self.bulks.create_docs() as operation:
            for doc in docs:
                data = dict(doc)
                operation.create(data.pop("_id"), data=data)
        assert operation.ok is not None
        return len(operation.ok)

    async def aclose(self) -> None:
        await self.couch.close()


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class AioHTTP(Client):
    name = "aiohttp"

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            headers={
                "Authorization": aiohttp.encode_basic_auth(*self.auth),
                "Accept": "application/json",
            },
            json_serialize=_dumps,
        )

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        async with self.session.request(method, url, **kwargs) as response:
            response.raise_for_status()
            return await response.json(loads=orjson.loads)

    async def get(self, doc_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._json(
            "GET", f"{self.url}/{self.docs_db}/{quote(doc_id, safe='')}"
        )
        return doc

    async def create(self, doc: dict[str, Any]) -> None:
        url = f"{self.url}/{self.docs_db}/{quote(doc['_id'], safe='')}"
        await self._json("PUT", url, json=doc)

    async def update(self, doc_id: str, n: int) -> None:
        url = f"{self.url}/{self.docs_db}/{quote(doc_id, safe='')}"
        doc = await self._json("GET", url)
        doc["n"] = n
        await self._json("PUT", url, json=doc)

    async def _view(self, params: dict[str, str]) -> list[dict[str, Any]]:
        url = f"{self.url}/{self.view_db}/_design/{DESIGN}/_view/{VIEW}"
        answer = await self._json("GET", url, params=params)
        return [row["doc"] for row in answer["rows"]]

    async def view_key(self, key: str) -> list[dict[str, Any]]:
        return await self._view({"key": _dumps(key), "include_docs": "true"})

    async def view_range(self, start: str, end: str) -> list[dict[str, Any]]:
        return await self._view(
            {
                "startkey": _dumps(start),
                "endkey": _dumps(end),
                "include_docs": "true",
                "limit": "100",
            }
        )

    async def bulk(self, docs: list[dict[str, Any]]) -> int:
        answer = await self._json(
            "POST", f"{self.url}/{self.bulk_db}/_bulk_docs", json={"docs": docs}
        )
        return sum(1 for item in answer if "rev" in item)

    async def aclose(self) -> None:
        await self.session.close()


class Raw(Client):
    name = "raw"

    async def start(self) -> None:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.http = RawClient(parts.hostname, parts.port, *self.auth)

    async def _ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.http.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    async def get(self, doc_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._ok("GET", f"/{self.docs_db}/{quote(doc_id, safe='')}")
        return doc

    async def create(self, doc: dict[str, Any]) -> None:
        await self._ok("PUT", f"/{self.docs_db}/{quote(doc['_id'], safe='')}", doc)

    async def update(self, doc_id: str, n: int) -> None:
        path = f"/{self.docs_db}/{quote(doc_id, safe='')}"
        doc = await self._ok("GET", path)
        doc["n"] = n
        await self._ok("PUT", path, doc)

    async def _view(self, query: str) -> list[dict[str, Any]]:
        answer = await self._ok("GET", f"/{self.view_db}/_design/{DESIGN}/_view/{VIEW}?{query}")
        return [row["doc"] for row in answer["rows"]]

    async def view_key(self, key: str) -> list[dict[str, Any]]:
        return await self._view(f"key={quote(_dumps(key), safe='')}&include_docs=true")

    async def view_range(self, start: str, end: str) -> list[dict[str, Any]]:
        return await self._view(
            f"startkey={quote(_dumps(start), safe='')}&endkey={quote(_dumps(end), safe='')}"
            "&include_docs=true&limit=100"
        )

    async def bulk(self, docs: list[dict[str, Any]]) -> int:
        answer = await self._ok("POST", f"/{self.bulk_db}/_bulk_docs", {"docs": docs})
        return sum(1 for item in answer if "rev" in item)

    async def aclose(self) -> None:
        await self.http.aclose()


CLIENTS: tuple[type[Client], ...] = (Ours, AioCouch, AioHTTP, Raw)
