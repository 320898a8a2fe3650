"""The fruit store's endpoints through HTTP, against the embedded server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from support.fruit_service import Client, Running, client, running_service

__all__ = ["client", "running_service"]  # fixtures, imported for pytest

JSON = {"Content-Type": "application/json"}


async def create(client: Client, color: str = "red", **extra: Any) -> dict[str, Any]:
    answer = await client.call("POST", "/v1.0/fruits", {"color": color, **extra})
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    body["etag"] = answer.header("ETag")
    return body


async def doc_count(running: Running) -> int:
    return int((await running.service.store.db.info())["doc_count"])


async def test_create_answers_the_fruit_its_location_etag_and_owner_token(client: Client) -> None:
    answer = await client.call("POST", "/v1.0/fruits", {"color": "red", "note": "ripe"})
    assert answer.status == 201
    body = answer.body
    assert set(body) >= {"fruit_id", "color", "created_on", "updated_on", "owner_token"}
    assert (body["color"], body["note"], body["eaten"]) == ("red", "ripe", 0)
    assert answer.header("Location") == f"/v1.0/fruits/{body['fruit_id']}"
    etag = answer.header("ETag")
    assert etag is not None
    assert etag.startswith('"1-')

    read = await client.call("GET", f"/v1.0/fruits/{body['fruit_id']}")
    assert read.status == 200
    assert read.header("ETag") == etag
    assert "owner_token" not in read.body  # shown once, at creation
    assert read.body["created_on"] == body["created_on"]


async def test_the_owner_token_is_hashed_the_note_encrypted_and_the_fruit_signed(
    running_service: Running,
) -> None:
    fruit = await create(running_service.client, note="from the orchard")
    doc = await running_service.service.store.db.get_doc(fruit["fruit_id"])
    assert doc["owner_token"].startswith("$argon2id$")  # never the token itself
    assert fruit["owner_token"] not in str(doc)
    assert set(doc["note"]) >= {"alg", "kid", "iv", "ct"}  # an envelope, not the text
    assert "orchard" not in str(doc)
    assert doc["$signature"]["kid"] == "test-1"
    # Read through the service, it is the plain fruit again.
    read = await running_service.client.call("GET", f"/v1.0/fruits/{fruit['fruit_id']}")
    assert read.body["note"] == "from the orchard"


@pytest.mark.parametrize("edit", ["field", "note", "unsigned"])
async def test_a_fruit_edited_in_couchdb_answers_500_tampered_and_is_logged(
    running_service: Running, edit: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = running_service.client
    fruit = await create(client, note="secret")
    other = await create(client, note="another")
    db = running_service.service.store.db
    doc = await db.get_doc(fruit["fruit_id"])
    if edit == "field":
        doc["color"] = "green"  # an administrator's edit, straight over HTTP
    elif edit == "note":
        doc["note"] = (await db.get_doc(other["fruit_id"]))["note"]  # a ciphertext moved
    else:
        del doc["$signature"]
    tampered_rev = (await db.put_doc(doc))["rev"]
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    with caplog.at_level("WARNING", logger="tor_async_couchdb.tornado"):
        read = await client.call("GET", path)
        changed = await client.call("PUT", path, {"color": "blue"})
        eaten = await client.call("POST", f"{path}/eaten", {"by": "eve"})
    for answer in (read, changed, eaten):
        assert (answer.status, answer.body["error"]) == (500, "tampered"), answer.body
        assert "secret" not in str(answer.body)
    assert any("tampered" in r.getMessage() and fruit["fruit_id"] in r.getMessage()
               for r in caplog.records)  # fmt: skip
    # Nothing was written over the tampered document.
    assert (await db.get_doc(fruit["fruit_id"]))["_rev"] == tampered_rev
    listed = await client.call("GET", "/v1.0/fruits?limit=10")
    assert (listed.status, listed.body["error"]) == (500, "tampered")


async def test_get_of_a_missing_or_malformed_id(client: Client) -> None:
    missing = await client.call("GET", "/v1.0/fruits/" + "0" * 32)
    assert (missing.status, missing.body["error"]) == (404, "not_found")
    for bad in ("not-an-id", "_design", "0" * 31, "%2Fetc"):
        answer = await client.call("GET", f"/v1.0/fruits/{bad}")
        assert (answer.status, answer.body["error"]) == (400, "invalid_id"), bad


async def test_writes_to_an_invalid_id_are_400_and_write_nothing(running_service: Running) -> None:
    client = running_service.client
    before = await doc_count(running_service)
    for bad in ("_design", "not-an-id", "..%2F_all_docs"):
        path = f"/v1.0/fruits/{bad}"
        for method, body, headers in (
            ("PUT", {"color": "red"}, {}),
            ("DELETE", None, {"X-Owner-Token": "x"}),
        ):
            answer = await client.call(method, path, body, headers=headers)
            assert (answer.status, answer.body["error"]) == (400, "invalid_id"), (method, bad)
        eaten = await client.call("POST", f"{path}/eaten", {"by": "ann"})
        assert (eaten.status, eaten.body["error"]) == (400, "invalid_id"), bad
    assert await doc_count(running_service) == before


async def test_if_none_match_answers_304(client: Client) -> None:
    fruit = await create(client)
    again = await client.call(
        "GET", f"/v1.0/fruits/{fruit['fruit_id']}", headers={"If-None-Match": fruit["etag"]}
    )
    assert again.status == 304


async def test_put_without_if_match_changes_the_colour(client: Client) -> None:
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    answer = await client.call("PUT", path, {"color": "green"})
    assert (answer.status, answer.body["color"]) == (200, "green")
    assert answer.header("ETag") not in (None, fruit["etag"])
    assert answer.body["updated_on"] > fruit["updated_on"]
    assert (await client.call("GET", path)).body["color"] == "green"


async def test_put_with_the_current_if_match_changes_it(client: Client) -> None:
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    answer = await client.call("PUT", path, {"color": "blue"}, headers={"If-Match": fruit["etag"]})
    assert answer.status == 200
    assert answer.body["color"] == "blue"


@pytest.mark.parametrize("stale", ["old", "weak"])
async def test_put_with_a_stale_or_weak_if_match_is_412_and_writes_nothing(
    client: Client, stale: str
) -> None:
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    current = (await client.call("PUT", path, {"color": "green"})).header("ETag")
    tag = fruit["etag"] if stale == "old" else f"W/{current}"
    answer = await client.call("PUT", path, {"color": "blue"}, headers={"If-Match": tag})
    assert (answer.status, answer.body["error"]) == (412, "precondition_failed")
    read = await client.call("GET", path)
    assert (read.body["color"], read.header("ETag")) == ("green", current)


async def test_put_of_a_missing_fruit_is_404(client: Client) -> None:
    answer = await client.call("PUT", "/v1.0/fruits/" + "1" * 32, {"color": "red"})
    assert answer.status == 404


async def test_delete_needs_the_owner_token(running_service: Running) -> None:
    client = running_service.client
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    none = await client.call("DELETE", path)
    assert (none.status, none.body["fields"]) == (401, ["X-Owner-Token"])
    wrong = await client.call("DELETE", path, headers={"X-Owner-Token": "guess"})
    assert (wrong.status, wrong.body["error"]) == (403, "wrong_owner_token")
    read = await client.call("GET", path)
    assert (read.status, read.header("ETag")) == (200, fruit["etag"])  # nothing written

    token = {"X-Owner-Token": fruit["owner_token"]}
    gone = await client.call("DELETE", path, headers=token)
    assert (gone.status, gone.body) == (204, "")
    assert (await client.call("GET", path)).status == 404
    assert (await client.call("DELETE", path, headers=token)).status == 404


async def test_delete_with_a_stale_if_match_is_412(client: Client) -> None:
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    await client.call("PUT", path, {"color": "green"})
    headers = {"X-Owner-Token": fruit["owner_token"], "If-Match": fruit["etag"]}
    assert (await client.call("DELETE", path, headers=headers)).status == 412
    assert (await client.call("GET", path)).status == 200
    headers["If-Match"] = str((await client.call("GET", path)).header("ETag"))
    assert (await client.call("DELETE", path, headers=headers)).status == 204


@pytest.mark.parametrize(
    "case",
    [
        (b'{"color": "red"', JSON, 400, "malformed_json", None),
        (b"[1, 2]", JSON, 400, "malformed_json", None),
        (b'{"color": "red"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type", None),
        (b'{"color": "red"}', {}, 415, "unsupported_media_type", None),
        (b'{"color": "red", "shape": "round"}', JSON, 400, "invalid", ["shape"]),
        (b'{"color": 3}', JSON, 400, "invalid", ["color"]),
        (b'{"color": "RED!"}', JSON, 400, "invalid", ["color"]),
        (b"{}", JSON, 400, "invalid", ["color"]),
        (b'{"color": "red", "note": "' + b"x" * 17000 + b'"}', JSON, 413, "too_large", None),
    ],
)
async def test_a_bad_body_is_a_4xx_naming_the_field_and_writes_nothing(
    running_service: Running, case: tuple[bytes, dict[str, str], int, str, list[str] | None]
) -> None:
    raw, headers, status, error, fields = case
    before = await doc_count(running_service)
    answer = await running_service.client.call("POST", "/v1.0/fruits", raw=raw, headers=headers)
    assert (answer.status, answer.body["error"]) == (status, error)
    assert answer.body.get("fields") == fields
    assert await doc_count(running_service) == before


async def test_a_bad_put_body_changes_nothing(client: Client) -> None:
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}"
    answer = await client.call("PUT", path, {"color": "green", "eaten": 100})
    assert (answer.status, answer.body["fields"]) == (400, ["eaten"])
    assert (await client.call("GET", path)).header("ETag") == fruit["etag"]


async def test_lists_page_with_an_opaque_cursor(client: Client) -> None:
    colors = ["red", "green", "red", "red", "green"]
    made = [(await create(client, color))["fruit_id"] for color in colors]
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        answer = await client.call("GET", "/v1.0/fruits" + query)
        assert answer.status == 200
        seen += [fruit["fruit_id"] for fruit in answer.body["fruits"]]
        pages += 1
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (made, 3)


async def test_a_colour_is_listed_through_its_view(client: Client) -> None:
    made = [(await create(client, color))["fruit_id"] for color in ["red", "green", "red", "red"]]
    reds = [fid for fid, color in zip(made, ["red", "green", "red", "red"], strict=True)
            if color == "red"]  # fmt: skip
    first = await client.call("GET", "/v1.0/fruits?color=red&limit=2")
    assert [f["fruit_id"] for f in first.body["fruits"]] == reds[:2]
    cursor = first.body["next_cursor"]
    second = await client.call("GET", f"/v1.0/fruits?color=red&limit=2&cursor={cursor}")
    assert [f["fruit_id"] for f in second.body["fruits"]] == reds[2:]
    assert second.body["next_cursor"] is None
    # A cursor is for the list it came from.
    other = await client.call("GET", f"/v1.0/fruits?color=green&cursor={cursor}")
    assert (other.status, other.body["error"]) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=abc", "limit=101", "cursor=zzz", "cursor=", "color=RED!"]
)
async def test_bad_list_arguments_are_400(client: Client, query: str) -> None:
    answer = await client.call("GET", f"/v1.0/fruits?{query}")
    assert answer.status == 400, answer.body
    assert answer.body["error"] in ("invalid", "invalid_cursor")


async def test_eating_counts_each_eater_once(client: Client) -> None:
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}/eaten"
    for by in ("ann", "bob", "ann"):
        answer = await client.call("POST", path, {"by": by})
        assert answer.status == 200
    assert answer.body == {"fruit_id": fruit["fruit_id"], "eaten": 2, "by": "ann"}
    read = await client.call("GET", f"/v1.0/fruits/{fruit['fruit_id']}")
    assert (read.body["eaten"], read.body["eaten_by"]) == (2, ["ann", "bob"])
    bad = await client.call("POST", path, {"by": ""})
    assert (bad.status, bad.body["fields"]) == (400, ["by"])


async def test_concurrent_eating_loses_nothing_and_counts_conflicts(
    running_service: Running,
) -> None:
    client = running_service.client
    fruit = await create(client)
    path = f"/v1.0/fruits/{fruit['fruit_id']}/eaten"
    answers = await asyncio.gather(*(client.call("POST", path, {"by": f"u{n}"}) for n in range(20)))
    assert [a.status for a in answers] == [200] * 20
    final = (await client.call("GET", f"/v1.0/fruits/{fruit['fruit_id']}")).body
    assert final["eaten"] == 20
    assert sorted(final["eaten_by"]) == sorted(f"u{n}" for n in range(20))
    # Concurrent changes of one fruit are combined into few writes; a batch's retries are
    # reported to each of its requests, and counted once in the metrics.
    retried = [int(a.header("X-Conflicts-Retried") or 0) for a in answers]
    assert running_service.metrics.counter("conflicts_retried") >= max(retried)
    assert final["updated_on"] > fruit["updated_on"]


async def test_unknown_paths_and_methods_answer_json(client: Client) -> None:
    missing = await client.call("GET", "/v2/nothing")
    assert (missing.status, missing.body["error"]) == (404, "not_found")
    wrong = await client.call("PATCH", "/v1.0/fruits", {"color": "red"})
    assert wrong.status == 405
    assert "error" in wrong.body
