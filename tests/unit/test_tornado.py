"""tor_async_couchdb.tornado's pure parts: error mapping, If-Match, histograms, rendering."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import cast

import pytest
import tornado.httputil
import tornado.web

import tor_async_couchdb as tac
from tor_async_couchdb._exceptions import status_error as make_status_error
from tor_async_couchdb._merge import BadLeafError, UnsealedChangeError
from tor_async_couchdb.tornado import (
    ErrorMap,
    ErrorRule,
    Histogram,
    HTTPProblem,
    IfMatch,
    ServiceMetrics,
    etag_for,
    if_match,
)


def status_error(status: int) -> tac.HTTPStatusError:
    return make_status_error(status, method="GET", url="http://db:5984/x")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (status_error(404), 404, "not_found"),
        (status_error(409), 409, "conflict"),
        (status_error(412), 412, "precondition_failed"),
        (status_error(401), 500, "database_refused"),
        (status_error(403), 500, "database_refused"),
        (status_error(500), 502, "database_error"),
        (status_error(400), 500, "database_error"),
        (status_error(429), 503, "database_busy"),
        (tac.ConnectError("refused"), 503, "database_unavailable"),
        (tac.ConnectionLost("reset"), 503, "database_unavailable"),
        (tac.ConnectTimeout("slow connect"), 503, "database_unavailable"),
        (tac.PoolTimeout("pool busy"), 503, "database_unavailable"),
        (tac.ReadTimeout("no answer"), 504, "database_timeout"),
        (tac.ClientClosedError("closed"), 503, "shutting_down"),
        (tac.InvalidNameError("bad id '_x'"), 400, "bad_request"),
        (tac.WrongTypeError("a vegetable", doc_id="v1"), 404, "not_found"),
        (TimeoutError(), 504, "timeout"),
        (tac.TamperedDocument("document 'f1' does not match", doc_id="f1"), 500, "tampered"),
        (tac.UnsignedDocument("document 'f1' is unsigned", doc_id="f1"), 500, "tampered"),
        (tac.DecryptionFailed("field 'note' of 'f1'", doc_id="f1"), 500, "tampered"),
        (tac.MalformedEnvelope("bad envelope", doc_id="f1"), 500, "tampered"),
        (tac.UnknownKeyError("key 'k9' unknown", key_id="k9"), 500, "protection_failed"),
        (BadLeafError("leaf '2-a'", kind="tampered", doc_id="f1", rev="2-a"), 500, "unmergeable"),
        (UnsealedChangeError("unsealed", model="Fruit", fields=("c",)), 500, "internal_error"),
        (RuntimeError("secret internals"), 500, "internal_error"),
    ],
)
def test_errors_map_to_statuses(error: BaseException, status: int, code: str) -> None:
    problem = ErrorMap().problem_for(error)
    assert (problem.status, problem.error) == (status, code)
    assert "db:5984" not in problem.reason  # never where the database is
    assert "secret" not in problem.reason


def test_a_validation_error_names_its_fields() -> None:
    error = tac.ModelValidationError(
        "bad", model="Fruit", errors=(("color", "Input should be a valid string"), ("tags.2", "x"))
    )
    problem = ErrorMap().problem_for(error)
    assert (problem.status, problem.fields) == (400, ("color", "tags"))
    assert problem.body() == {
        "error": "invalid",
        "reason": "color: Input should be a valid string; tags.2: x",
        "fields": ["color", "tags"],
    }


def test_too_many_requests_passes_retry_after_on() -> None:
    error = status_error(429)
    assert isinstance(error, tac.TooManyRequests)
    error.retry_after = 1.2
    assert ErrorMap().problem_for(error).headers == {"Retry-After": "2"}


def test_a_service_rule_comes_first() -> None:
    errors = ErrorMap().with_rules(ErrorRule(tac.Conflict, 423, "locked", "busy"))
    assert errors.problem_for(status_error(409)).status == 423
    assert errors.problem_for(status_error(404)).status == 404


def test_problems_and_tornado_errors_keep_their_status() -> None:
    problem = ErrorMap().problem_for(HTTPProblem(413, "too_large", "big", fields=["body"]))
    assert problem.body() == {"error": "too_large", "reason": "big", "fields": ["body"]}
    assert ErrorMap().problem_for(tornado.web.HTTPError(405)).status == 405


def request_with(headers: dict[str, str]) -> tornado.web.RequestHandler:
    # if_match only reads request.headers
    fake = SimpleNamespace(request=SimpleNamespace(headers=tornado.httputil.HTTPHeaders(headers)))
    return cast("tornado.web.RequestHandler", fake)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ('"1-abc"', IfMatch(revs=("1-abc",))),
        ('"1-abc", "2-def"', IfMatch(revs=("1-abc", "2-def"))),
        ("*", IfMatch(wildcard=True)),
        ('W/"1-abc"', IfMatch(revs=())),  # weak tags never match
        ("1-abc", IfMatch(revs=())),  # unquoted: not an entity tag
    ],
)
def test_if_match_parsing(header: str | None, expected: IfMatch | None) -> None:
    headers = {} if header is None else {"If-Match": header}
    assert if_match(request_with(headers)) == expected


def test_if_match_matching() -> None:
    assert IfMatch(revs=("1-a",)).matches("1-a")
    assert not IfMatch(revs=("1-a",)).matches("2-b")
    assert IfMatch(wildcard=True).matches("2-b")
    assert not IfMatch(wildcard=True).matches(None)  # no document: * fails too
    with pytest.raises(HTTPProblem) as raised:
        IfMatch(revs=("1-a",)).check("2-b")
    assert raised.value.status_code == 412
    assert etag_for("1-a") == '"1-a"'


def test_histogram_buckets_are_cumulative() -> None:
    hist = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        hist.observe(value)
    assert hist.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert (hist.count, round(hist.total, 2)) == (4, 3.65)


def test_prometheus_text() -> None:
    metrics = ServiceMetrics(buckets=(0.5,))
    metrics.record_request('a"b', "GET", 200, 0.2)
    metrics.record_couch_request(SimpleNamespace(method="PUT", duration=0.7))
    metrics.count("conflicts_retried", 3)
    stats = SimpleNamespace(requests=5, errors_by_status={409: 2}, transport_errors=0, retries=1,
                            bytes_sent=10, bytes_received=20)  # fmt: skip
    text = metrics.as_prometheus(client_stats=stats, gauges={"db_docs": {"fruits": 4}})
    lines = text.splitlines()
    assert 'http_requests_total{route="a\\"b",method="GET",status="200"} 1' in lines
    assert 'http_request_duration_seconds_bucket{route="a\\"b",method="GET",le="0.5"} 1' in lines
    assert 'couchdb_request_duration_seconds_bucket{method="PUT",le="0.5"} 0' in lines
    assert 'couchdb_request_duration_seconds_bucket{method="PUT",le="+Inf"} 1' in lines
    assert "conflicts_retried_total 3" in lines
    assert 'couchdb_client_errors_total{status="409"} 2' in lines
    assert 'db_docs{database="fruits"} 4' in lines
    assert "# TYPE http_requests_total counter" in lines
    assert text.endswith("\n")
    # Every sample line belongs to a family declared before it.
    declared = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    for line in lines:
        if not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert any(name == d or name.startswith(d + "_") for d in declared), name


def test_json_metrics() -> None:
    metrics = ServiceMetrics(buckets=(0.5,))
    metrics.record_request("r", "GET", 200, 0.2)
    metrics.record_request("r", "GET", 404, 0.9)
    body = metrics.as_json()
    assert body["routes"]["r"]["GET"]["statuses"] == {"200": 1, "404": 1}
    assert body["routes"]["r"]["GET"]["latency"]["buckets"] == {"0.5": 1, "+Inf": 2}


def test_all_is_sorted_and_every_name_exists() -> None:
    import tor_async_couchdb.tornado as helpers

    assert list(helpers.__all__) == sorted(set(helpers.__all__))
    assert [name for name in helpers.__all__ if not hasattr(helpers, name)] == []


def test_importing_without_tornado_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['tornado'] = None\n"
        "try:\n    import tor_async_couchdb.tornado\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'tor-async-couchdb[tornado]'" in out.stdout
