"""The client's request engine against a mock transport: retries, auth, logs, counters."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb._transport import MockRequest, MockTransport, Response

_OK = Response(200, {"content-type": "application/json"}, b'{"ok":true}')
_FAST = tac.RetryPolicy(max_retries=3, backoff=0.0, max_backoff=0.0)


def _client(
    handler: Callable[[MockRequest], Response], **kwargs: object
) -> tuple[tac.CouchDB, MockTransport]:
    transport = MockTransport(handler)
    kwargs.setdefault("retry", _FAST)
    client = tac.CouchDB("http://127.0.0.1:5984", transport=transport, **kwargs)  # type: ignore[arg-type]
    return client, transport


def _failing(
    failures: list[Response | Exception], final: Response = _OK
) -> Callable[[MockRequest], Response]:
    def handler(request: MockRequest) -> Response:
        if failures:
            outcome = failures.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return final

    return handler


async def test_transient_statuses_of_safe_requests_are_retried() -> None:
    failures: list[Response | Exception] = [Response(503, {}, b""), Response(502, {}, b"")]
    client, transport = _client(_failing(failures))
    async with client:
        assert await client.info() == {"ok": True}
        stats = client.stats()
    assert len(transport.requests) == 3
    assert stats.retries == 2
    assert stats.requests == 3
    assert stats.errors_by_status == {503: 1, 502: 1}


async def test_retries_stop_after_max_retries() -> None:
    client, transport = _client(lambda request: Response(503, {}, b'{"error":"x"}'))
    async with client:
        with pytest.raises(tac.ServerError) as caught:
            await client.info()
    assert len(transport.requests) == 4
    assert caught.value.status == 503


async def test_disabled_policy_never_retries() -> None:
    client, transport = _client(
        lambda request: Response(503, {}, b""), retry=tac.RetryPolicy.disabled()
    )
    async with client:
        with pytest.raises(tac.ServerError):
            await client.info()
    assert len(transport.requests) == 1


async def test_429_waits_for_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("tor_async_couchdb._couch._engine.asyncio.sleep", fake_sleep)
    failures: list[Response | Exception] = [Response(429, {"retry-after": "2"}, b"")]
    client, _ = _client(_failing(failures))
    async with client:
        await client.info()
    assert slept == [2.0]


async def test_retry_after_is_capped_and_429_error_carries_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("tor_async_couchdb._couch._engine.asyncio.sleep", fake_sleep)
    policy = tac.RetryPolicy(max_retries=1, backoff=0, max_retry_after=1.5)
    answer = Response(429, {"retry-after": "100"}, b'{"error":"too_many_requests"}')
    client, _ = _client(lambda request: answer, retry=policy)
    async with client:
        with pytest.raises(tac.TooManyRequests) as caught:
            await client.info()
    assert slept == [1.5]
    assert caught.value.retry_after == 100.0


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = tac.RetryPolicy(backoff=0.1, max_backoff=0.5)
    for retry, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (10, 0.5)):
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2  # jitter spreads, not a constant
    with pytest.raises(tac.InvalidInputError, match="max_retries"):
        tac.RetryPolicy(max_retries=-1)


async def test_409_is_never_retried() -> None:
    answer = Response(409, {}, b'{"error":"conflict","reason":"Document update conflict."}')
    client, transport = _client(lambda request: answer)
    async with client:
        with pytest.raises(tac.Conflict) as caught:
            await client.database("db").put_doc({"_id": "a", "_rev": "1-x"})
    assert len(transport.requests) == 1
    assert caught.value.doc_id == "a"
    assert caught.value.error == "conflict"
    assert caught.value.reason == "Document update conflict."


async def test_post_without_id_is_not_retried_after_it_may_have_arrived() -> None:
    failures: list[Response | Exception] = [tac.ConnectionLost("reset"), Response(503, {}, b"")]
    client, transport = _client(_failing(failures))
    async with client:
        with pytest.raises(tac.ConnectionLost):
            await client.database("db").post_doc({"a": 1})
    assert len(transport.requests) == 1


async def test_post_with_id_and_put_are_retried() -> None:
    failures: list[Response | Exception] = [tac.ConnectionLost("reset"), tac.ReadTimeout("slow")]
    client, transport = _client(_failing(failures))
    async with client:
        await client.database("db").post_doc({"_id": "a"})
        failures.append(tac.ConnectionLost("reset"))
        await client.database("db").put_doc({"_id": "a"})
    assert len(transport.requests) == 5


async def test_connect_errors_are_retried_for_any_method() -> None:
    failures: list[Response | Exception] = [tac.ConnectError("refused")]
    client, transport = _client(_failing(failures))
    async with client:
        await client.database("db").post_doc({"a": 1})
    assert len(transport.requests) == 2


async def test_bulk_docs_without_ids_is_not_retried() -> None:
    client, transport = _client(_failing([tac.ConnectionLost("reset")]))
    async with client:
        with pytest.raises(tac.ConnectionLost):
            await client.database("db").bulk_docs([{"_id": "a"}, {"b": 1}])
    assert len(transport.requests) == 1


async def test_session_auth_logs_in_once_and_renews_on_401() -> None:
    logins = 0
    expired = {"AuthSession=first": True}

    def handler(request: MockRequest) -> Response:
        nonlocal logins
        if request.target == "/_session" and request.method == "POST":
            logins += 1
            cookie = "first" if logins == 1 else "second"
            return Response(200, {"set-cookie": f"AuthSession={cookie}; Path=/"}, b'{"ok":true}')
        if expired.get(request.header("cookie") or "", False):
            return Response(401, {}, b'{"error":"unauthorized"}')
        return _OK

    client, transport = _client(handler, auth=tac.SessionAuth("alice", "s3cret"))
    async with client:
        assert await client.info() == {"ok": True}
        assert await client.info() == {"ok": True}
    assert logins == 2
    cookies = [request.header("cookie") for request in transport.requests]
    assert cookies == [None, "AuthSession=first", None, "AuthSession=second", "AuthSession=second"]
    assert all(request.header("authorization") is None for request in transport.requests)


async def test_failed_session_login_raises_unauthorized_without_password() -> None:
    client, _ = _client(
        lambda request: Response(401, {}, b'{"error":"unauthorized"}'),
        auth=tac.SessionAuth("alice", "s3cret-pw"),
    )
    async with client:
        with pytest.raises(tac.Unauthorized) as caught:
            await client.info()
    assert "s3cret-pw" not in str(caught.value) + repr(caught.value)


async def test_renewed_cookie_from_the_server_is_taken() -> None:
    def handler(request: MockRequest) -> Response:
        if request.target == "/_session":
            return Response(200, {"set-cookie": "AuthSession=one"}, b"{}")
        return Response(200, {"set-cookie": "AuthSession=two; Path=/"}, b"{}")

    client, transport = _client(handler, auth=tac.SessionAuth("alice", "pw"))
    async with client:
        await client.info()
        await client.info()
    assert transport.requests[-1].header("cookie") == "AuthSession=two"


async def test_basic_and_bearer_auth_headers() -> None:
    client, transport = _client(lambda request: _OK, auth=("bob", "pw"))
    async with client:
        await client.info()
    assert transport.requests[0].header("authorization") == "Basic Ym9iOnB3"
    client, transport = _client(lambda request: _OK, auth=tac.BearerAuth("tok"))
    async with client:
        await client.info()
    assert transport.requests[0].header("authorization") == "Bearer tok"


async def test_credentials_never_in_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    secret = "pa55-w0rd"
    answer = Response(503, {}, b'{"error":"down"}')
    for auth in (None, ("u", secret), tac.SessionAuth("u", secret), tac.BearerAuth(secret)):
        url = f"http://u:{secret}@127.0.0.1:5984/" if auth is None else "http://127.0.0.1:5984"

        def handler(request: MockRequest) -> Response:
            if request.target == "/_session":
                return Response(200, {"set-cookie": "AuthSession=c"}, b"{}")
            return answer

        transport = MockTransport(handler)
        client = tac.CouchDB(url, auth=auth, transport=transport, retry=_FAST)
        with caplog.at_level(logging.DEBUG, logger="tor_async_couchdb"):
            async with client:
                with pytest.raises(tac.ServerError) as caught:
                    await client.database("db").get_doc("x")
                texts = [repr(client), str(client.database("db")), client.url]
        texts += [str(caught.value), repr(caught.value), str(caught.value.url)]
        texts += [record.getMessage() for record in caplog.records]
        assert caplog.records
        assert all(secret not in text for text in texts), texts
        caplog.clear()


def test_bad_url_error_does_not_show_the_password() -> None:
    with pytest.raises(tac.InvalidInputError) as caught:
        tac.CouchDB("ftp://user:hunter2@host/")
    assert "hunter2" not in str(caught.value)


async def test_log_records_one_per_request_and_retry_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = _client(_failing([Response(503, {}, b"")]))
    with caplog.at_level(logging.DEBUG, logger="tor_async_couchdb"):
        async with client:
            await client.all_dbs()
    messages = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert messages[0][0] == logging.WARNING
    assert "retry 1 of 3" in messages[0][1]
    assert messages[1][0] == logging.DEBUG
    assert messages[1][1].startswith("GET http://127.0.0.1:5984/_all_dbs 200")
    assert "retries=1" in messages[1][1]


async def test_on_request_hook_sees_every_request_also_failed_ones() -> None:
    records: list[tac.RequestRecord] = []
    failures: list[Response | Exception] = [tac.ConnectionLost("x")] * 4
    client, _ = _client(_failing(failures), on_request=records.append)
    async with client:
        with pytest.raises(tac.ConnectionLost):
            await client.info()
        await client.info()
    assert [record.status for record in records] == [None, 200]
    assert records[0].retries == 3
    assert isinstance(records[0].error, tac.ConnectionLost)
    assert records[1].url == "http://127.0.0.1:5984/"


async def test_non_json_answer_raises_protocol_error_naming_the_url() -> None:
    client, _ = _client(lambda request: Response(200, {}, b"<html>proxy error"))
    async with client:
        with pytest.raises(tac.ProtocolError) as caught:
            await client.database("db").get_doc("a/b")
    assert caught.value.url == "http://127.0.0.1:5984/db/a%2Fb"
    assert "<html>" in str(caught.value)


async def test_truncated_json_answer_raises_protocol_error() -> None:
    client, _ = _client(lambda request: Response(200, {}, b'{"rows": [{"id"'))
    async with client:
        with pytest.raises(tac.ProtocolError) as caught:
            await client.all_dbs()
    assert caught.value.url == "http://127.0.0.1:5984/_all_dbs"


async def test_error_status_with_html_body_keeps_a_reason() -> None:
    client, _ = _client(lambda request: Response(500, {}, b"<h1>boom</h1>"))
    async with client:
        with pytest.raises(tac.ServerError) as caught:
            await client.all_dbs()
    assert caught.value.reason == "<h1>boom</h1>"


async def test_closed_client_refuses_requests_and_aclose_is_idempotent() -> None:
    client, transport = _client(lambda request: _OK)
    await client.aclose()
    await client.aclose()
    assert client.closed
    assert transport.closed
    with pytest.raises(tac.ClientClosedError):
        await client.info()


def test_unclosed_client_warns_when_collected() -> None:
    client, _ = _client(lambda request: _OK)
    with pytest.warns(ResourceWarning):
        client.__del__()
    client._engine.closed = True


async def test_up_is_false_when_the_server_is_unreachable() -> None:
    client, _ = _client(_failing([tac.ConnectionLost("x")] * 10), retry=tac.RetryPolicy.disabled())
    async with client:
        assert await client.up() is False


async def test_up_falls_back_to_root_and_survives_its_failure() -> None:
    def handler(request: MockRequest) -> Response:
        if request.target == "/_up":
            return Response(404, {}, b'{"error":"not_found"}')
        raise tac.ConnectionLost("gone")

    client, _ = _client(handler, retry=tac.RetryPolicy.disabled())
    async with client:
        assert await client.up() is False


async def test_stream_error_status_keeps_couchdb_reason() -> None:
    body = b'{"error":"not_found","reason":"missing design doc"}'
    client, _ = _client(lambda request: Response(404, {}, body))
    async with client:
        feed = client.database("db").feed(filter="d/f")
        with pytest.raises(tac.NotFound) as caught:
            await anext(aiter(feed))
    assert caught.value.reason == "missing design doc"


async def test_replicate_moves_url_credentials_into_a_header() -> None:
    client, transport = _client(lambda request: _OK)
    async with client:
        await client.replicate("http://u:p%40ss@h:5984/src", "dst", create_target=True)
    body = transport.requests[0].body or b""
    assert b"p%40ss" not in body
    assert b"p@ss" not in body
    assert b'"url":"http://h:5984/src"' in body
    assert b"Basic" in body
    assert b'"target":"dst"' in body
    assert b'"create_target":true' in body


async def test_replicate_sends_plain_urls_as_strings() -> None:
    client, transport = _client(lambda request: _OK)
    async with client:
        await client.replicate("http://h:5984/a", {"url": "http://h/b", "headers": {}})
    body = transport.requests[0].body or b""
    assert b'"source":"http://h:5984/a"' in body
    assert b'"target":{"url":"http://h/b"' in body


async def test_feed_pins_now_to_a_sequence_before_connecting() -> None:
    def handler(request: MockRequest) -> Response:
        if request.target == "/db":
            return Response(200, {}, b'{"update_seq":"7-opaque"}')
        return Response(200, {}, b'{"seq":"8-x","id":"a","changes":[]}\n')

    client, transport = _client(handler)
    async with client:
        feed = client.database("db").feed()
        assert (await anext(aiter(feed)))["id"] == "a"
        await feed.aclose()
    assert transport.requests[1].stream
    assert "since=7-opaque&" in transport.requests[1].target


async def test_session_expiring_during_a_feed_is_renewed_on_reconnect() -> None:
    logins = 0

    def handler(request: MockRequest) -> Response:
        nonlocal logins
        if request.target == "/_session":
            logins += 1
            return Response(200, {"set-cookie": f"AuthSession=c{logins}"}, b'{"ok":true}')
        if request.target == "/db":
            return Response(200, {}, b'{"update_seq":"7"}')
        if request.header("cookie") == "AuthSession=c1":
            return Response(401, {}, b'{"error":"unauthorized","reason":"expired"}')
        return Response(200, {}, b'{"seq":"8","id":"a","changes":[]}\n')

    client, _ = _client(handler, auth=tac.SessionAuth("alice", "s3cret"))
    async with client:
        feed = client.database("db").feed(since="now", heartbeat=1.0)
        change = await anext(feed)
        await feed.aclose()
    assert change["id"] == "a"
    assert logins == 2


async def test_turning_tls_verification_off_warns() -> None:
    with pytest.warns(tac.InsecureTLSWarning, match="verification is off"):
        client = tac.CouchDB("https://couch.example:6984", verify=False)
    await client.aclose()


async def test_a_callers_header_replaces_the_clients_own() -> None:
    client, transport = _client(lambda request: Response(200, {"content-type": "image/png"}, b"P"))
    async with client:
        data, kind = await client.database("db").get_attachment("doc", "logo.png")
    assert (data, kind) == (b"P", "image/png")
    headers = [name.lower() for name, _ in transport.requests[0].headers]
    assert headers.count("accept") == 1
    assert transport.requests[0].header("accept") == "*/*"
