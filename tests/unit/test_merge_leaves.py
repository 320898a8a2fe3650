"""The merge of leaf bodies: bad leaves are reported, deletes follow the model's policy,
protection hooks, the canonical form, and independence from the hash seed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import tor_async_couchdb as tac
from support.merge_models import FakeTime, Fruit, Order, base_doc, branch, rev_of
from tor_async_couchdb._merge import (
    BadLeafError,
    HybridClock,
    LeafHooks,
    Mergeable,
    canonical_bytes,
    is_resolver_tombstone,
    resolve_leaves,
    seal,
)


def _two_leaves() -> tuple[dict[str, Any], dict[str, Any]]:
    base = base_doc()
    a = branch(base, HybridClock("a", now=FakeTime()), [("color", 1), ("eat", 4)], FakeTime())
    b = branch(base, HybridClock("b", now=FakeTime()), [("add", 1), ("eat", 3)], FakeTime())
    return a, b


def test_a_conflict_merges_into_a_child_of_the_winner_and_tombstones() -> None:
    a, b = _two_leaves()
    resolution = resolve_leaves(Fruit, [a, b])
    winner = max([a, b], key=lambda leaf: leaf["_rev"])
    assert resolution.winner == winner["_rev"]
    assert resolution.merged is not None
    assert resolution.merged["_rev"] == winner["_rev"]
    assert list(resolution.merged) == sorted(resolution.merged)  # canonical key order
    merged = Fruit.from_doc(resolution.merged)
    assert (merged.color, merged.eaten.value, merged.tags.value) == ("c1", 3, frozenset({"t1"}))
    (tombstone,) = resolution.tombstones
    loser = min(a["_rev"], b["_rev"])
    assert tombstone == {"_deleted": True, "_id": "fruit-1", "_rev": loser, "merged": True}
    assert is_resolver_tombstone(tombstone)


def _bad(leaf: Mapping[str, Any], **change: Any) -> dict[str, Any]:
    return {**leaf, **change, "_rev": "9-bad"}


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"color": 3}, "invalid"),
        ({"type": "fruit_v2.0"}, "newer_version"),
        ({"eaten": {"p": {"a": "many"}, "n": {}}}, "unreadable_metadata"),
        ({"stamps": {"color": "yesterday"}}, "unreadable_metadata"),
        ({"tags": {"dots": [["t1", "a", 5]], "ctx": {"a": 1}}}, "unreadable_metadata"),
        ({"picked": {"p": {"a": -4}}}, "unreadable_metadata"),
    ],
)
def test_bad_leaves_are_reported_not_guessed(change: dict[str, Any], kind: str) -> None:
    a, b = _two_leaves()
    with pytest.raises(BadLeafError) as caught:
        resolve_leaves(Fruit, [a, _bad(b, **change)])
    assert caught.value.kind == kind
    assert caught.value.rev == "9-bad"
    assert caught.value.doc_id == "fruit-1"


def test_one_dot_for_two_elements_is_unreadable() -> None:
    a, b = _two_leaves()
    forged = {"dots": [["t9", "b", 1]], "ctx": {"b": 1}}  # b's dot 1 is t1's in the other leaf
    with pytest.raises(BadLeafError) as caught:
        resolve_leaves(Fruit, [b, _bad(a, tags=forged)])
    assert caught.value.kind == "unreadable_metadata"


class Plain(tac.Model, type_name="plain", version="1.0"):
    color: str


def test_models_without_policies_are_reported() -> None:
    leaves = [{"_id": "p", "_rev": f"2-{x}", "type": "plain_v1.0", "color": x} for x in "ab"]
    with pytest.raises(BadLeafError) as caught:
        resolve_leaves(Plain, leaves)
    assert caught.value.kind == "no_policy"
    with pytest.raises(BadLeafError) as unknown:
        resolve_leaves(tac.ModelSet(Fruit), leaves)
    assert unknown.value.kind == "no_policy"


def test_update_wins_sets_a_concurrent_delete_aside() -> None:
    a, b = _two_leaves()
    deleted = {"_id": "fruit-1", "_rev": "3-zzz", "_deleted": True}
    resolution = resolve_leaves(Fruit, [a, deleted])
    assert resolution.merged is None  # the one live leaf already is the merge
    assert resolution.body is not None
    assert resolution.tombstones == ()
    (closed,) = resolution.closures  # the delete's leaf, closed as replication would
    assert closed["_revisions"]["ids"][1] == "zzz"
    assert closed["_rev"].startswith("4-")
    assert (closed["_deleted"], closed["merged"]) == (True, True)
    both = resolve_leaves(Fruit, [a, b, deleted])
    assert both.merged is not None
    assert len(both.tombstones) == 1
    assert both.closures == resolution.closures  # the same revision wherever it is made


def test_delete_wins_tombstones_every_leaf() -> None:
    leaves: list[dict[str, Any]] = [
        {"_id": "o1", "_rev": "2-a", "type": "order_v1.0", "state": "paid", "stamps": {}},
        {"_id": "o1", "_rev": "2-b", "type": "order_v1.0", "state": "sent", "stamps": {}},
        {"_id": "o1", "_rev": "2-c", "_deleted": True},
    ]
    resolution = resolve_leaves(Order, leaves)
    assert resolution.body is None
    assert resolution.merged is None
    assert sorted(t["_rev"] for t in resolution.tombstones) == ["2-a", "2-b"]
    assert [c["_revisions"]["ids"][1] for c in resolution.closures] == ["c"]
    # Without a user's delete, the same model merges as usual.
    assert resolve_leaves(Order, leaves[:2]).body is not None


def test_resolver_tombstones_are_history() -> None:
    a, _ = _two_leaves()
    closed = {"_id": "fruit-1", "_rev": "3-t", "_deleted": True, "merged": True}
    assert resolve_leaves(Fruit, [a, closed]).writes == []
    assert resolve_leaves(Fruit, [closed]).writes == []
    assert resolve_leaves(Fruit, [a, closed]).settled


def test_a_users_delete_left_open_when_every_leaf_is_deleted_is_closed() -> None:
    closed = {"_id": "o1", "_rev": "3-t", "_deleted": True, "merged": True}
    user = {"_id": "o1", "_rev": "3-u", "_deleted": True}
    resolution = resolve_leaves(Order, [closed, user])
    assert (resolution.body, resolution.writes) == (None, [])
    assert [c["_revisions"]["ids"] for c in resolution.closures] != []
    assert resolve_leaves(Order, [user]).settled  # a lone delete is just a delete


def test_the_never_delete_tombstone_follows_the_delete_policy() -> None:
    def leaf(rev: str, tombstone: bool, model: str = "fruit") -> dict[str, Any]:
        doc = {"_id": "x", "_rev": rev, "type": f"{model}_v1.0", "stamps": {}}
        return {**doc, "tombstone": True} if tombstone else doc

    kept = resolve_leaves(Fruit, [leaf("2-a", True), leaf("2-b", False)]).body
    assert kept is not None
    assert "tombstone" not in kept  # update wins
    gone = resolve_leaves(Order, [leaf("2-a", True, "order"), leaf("2-b", False, "order")]).body
    assert gone is not None
    assert gone["tombstone"] is True  # delete wins


def test_tampered_leaves_are_quarantined() -> None:
    a, b = _two_leaves()

    def verify(doc: Mapping[str, Any]) -> None:
        if doc["_rev"] == b["_rev"]:
            raise ValueError("bad signature")

    with pytest.raises(BadLeafError) as caught:
        resolve_leaves(Fruit, [a, b], hooks=LeafHooks(verify=verify))
    assert caught.value.kind == "tampered"


class Secret(Mergeable, type_name="secret", version="1.0"):
    note: str = ""
    pin: str = ""  # encrypted by the (fake) protection below


_KEYS = {"k1": b"one", "k2": b"two"}


def _encrypt(text: str, key_id: str) -> str:
    # A stand-in cipher with a random-looking output: it must never be re-made by a merge.
    nonce = hashlib.sha256(os.urandom(8)).hexdigest()[:8]
    return f"enc:{key_id}:{nonce}:{base64.b64encode(text.encode()).decode()}"


def _signature(doc: Mapping[str, Any], key_id: str) -> str:
    content = {k: v for k, v in doc.items() if not k.startswith("_") and k != "sig"}
    mac = hmac.new(_KEYS[key_id], canonical_bytes(content), "sha256").hexdigest()
    return f"{key_id}:{mac}"


def _verify(doc: Mapping[str, Any]) -> None:
    key_id = str(doc["sig"]).partition(":")[0]
    if not hmac.compare_digest(str(doc["sig"]), _signature(doc, key_id)):
        raise ValueError("signature mismatch")


def _decode(doc: Mapping[str, Any]) -> dict[str, Any]:
    plain = {k: v for k, v in doc.items() if k != "sig"}
    plain["pin"] = base64.b64decode(str(doc["pin"]).rsplit(":", 1)[1]).decode()
    return plain


def _sign(merged: dict[str, Any], winner: Mapping[str, Any]) -> dict[str, Any]:
    key_id = str(winner["sig"]).partition(":")[0]  # the winner's key: the same everywhere
    return {**merged, "sig": _signature(merged, key_id)}


def _stored(secret: Secret, key_id: str, rev: str) -> dict[str, Any]:
    doc = secret.to_doc()
    doc["pin"] = _encrypt(secret.pin, key_id)
    return {**doc, "sig": _signature(doc, key_id), "_rev": rev}


def test_encrypted_values_are_carried_over_and_the_merge_is_signed() -> None:
    clock_a, clock_b = HybridClock("a"), HybridClock("b")
    a = Secret(id="s1", pin="1234")
    seal(a, clock_a)
    b = Secret.from_doc(a.to_doc())
    a.note = "from a"
    seal(a, clock_a)
    leaf_a = _stored(a, "k1", "2-a")
    b.pin = "9999"
    seal(b, clock_b)
    leaf_b = _stored(b, "k2", "2-b")
    hooks = LeafHooks(verify=_verify, decode=_decode, sign=_sign)
    resolution = resolve_leaves(Secret, [leaf_a, leaf_b], hooks=hooks)
    merged = resolution.merged
    assert merged is not None
    assert merged["pin"] == leaf_b["pin"]  # the ciphertext itself, not re-encrypted
    assert merged["note"] == "from a"
    assert merged["sig"].startswith("k2:")  # signed with the winner's key
    _verify(merged)
    again = resolve_leaves(Secret, [leaf_b, leaf_a], hooks=hooks)
    assert again.writes == resolution.writes


def test_the_canonical_form_of_numbers_and_keys() -> None:
    value = {"b": 1.0, "a": [-0.0, 1e300, 0.5, 2**60], "\u00e9": {"z": 1, "Z": 2}}
    assert canonical_bytes(value) == (
        b'{"a":[0,1e+300,0.5,1152921504606846976],"b":1,"\xc3\xa9":{"Z":2,"z":1}}'
    )


_SCRIPT = """
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
from support.merge_models import FakeTime, Fruit, base_doc, branch
from tor_async_couchdb._merge import HybridClock, resolve_leaves
base = base_doc()
ops = [[("add", n % 5), ("eat", n % 4), ("color", n)] for n in range(3)]
leaves = [branch(base, HybridClock(f"w{n}", now=FakeTime()), ops[n] * 3, FakeTime())
          for n in range(3)]
for n in range(3):
    leaves[n] = branch(leaves[n], HybridClock(f"x{n}", now=FakeTime()),
                       [("add", k) for k in range(10)], FakeTime())
writes = resolve_leaves(Fruit, leaves).writes
print(hashlib.sha256(json.dumps(writes).encode()).hexdigest())
"""


def test_merges_in_processes_with_different_hash_seeds_are_identical() -> None:
    tests_dir = str(Path(__file__).resolve().parent.parent)
    digests = set()
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, tests_dir],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1
    assert len(next(iter(digests))) == 64


def test_leaves_of_two_documents_are_refused() -> None:
    a, b = _two_leaves()
    with pytest.raises(tac.InvalidInputError):
        resolve_leaves(Fruit, [a, {**b, "_id": "other"}])
    with pytest.raises(tac.InvalidInputError):
        resolve_leaves(Fruit, [])
    assert json.loads(canonical_bytes(rev_of(1, a)))
