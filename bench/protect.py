"""Micro-benchmark of the protection codecs (issue 12): ``python -m bench.protect``.

Per document, in µs, medians of several rounds in one process: signing and verifying, and
encrypting and decrypting two fields, next to (a) the model layer's own ``to_doc``/``from_doc``
of the same model and (b) a whole model ``db.get``/``db.save`` through a mock transport that
answers at once (the client's CPU without the network's wait; the store-level benchmark against
the server comes with the integration). Against the server, a get or save costs the client
more CPU than (b), so (b)'s ratios are the stricter. argon2id is reported apart, per hash: it
is slow on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson

import tor_async_couchdb as tac
from tor_async_couchdb._protect import (
    Argon2Policy,
    Encrypted,
    FieldContext,
    Key,
    KeyRing,
    Protection,
)
from tor_async_couchdb._transport import MockRequest, MockTransport, Response

Doc = dict[str, Any]


class Customer(tac.Model, type_name="customer", version="1.0"):
    customer_id: Annotated[str, tac.Indexed()]
    name: str
    email: Annotated[str, tac.Indexed(), Encrypted(blind_index=True)]
    phone: Annotated[str, Encrypted()]
    city: str
    visits: int
    balance: float
    tags: list[str]
    updated_on: datetime


def customer() -> Customer:
    return Customer(
        id="0190d3c1a2b47c3e8f00a1b2c3d4e5f6",
        rev="3-5d1e9a7b2c",
        customer_id="c-0001",
        name="Ada Lovelace",
        email="ada@example.com",
        phone="+44 20 7946 0000",
        city="London",
        visits=42,
        balance=1234.5,
        tags=["gold", "newsletter"],
        updated_on=datetime(2026, 12, 1, 9, 40, tzinfo=UTC),
    )


def per_op_us(operation: Callable[[], object], calls: int) -> float:
    """The mean CPU time of one call over ``calls`` calls, in µs (CPU time: on a shared
    machine, the time this process waited for a core is not its cost)."""
    start = time.process_time_ns()
    for _ in range(calls):
        operation()
    return (time.process_time_ns() - start) / calls / 1000


def per_op_async_us(
    runner: asyncio.Runner, operation: Callable[[], Awaitable[object]], calls: int
) -> float:
    """:func:`per_op_us` of a coroutine function, the calls awaited in one loop run."""

    async def loop() -> float:
        start = time.process_time_ns()
        for _ in range(calls):
            await operation()
        return (time.process_time_ns() - start) / calls / 1000

    return runner.run(loop())


def mock_database(model: Customer) -> tac.Database:
    """A database handle whose transport answers at once: the stored model, or a write's ok."""
    stored = orjson.dumps(model.to_doc())
    saved = orjson.dumps({"ok": True, "id": model.id, "rev": "4-5d1e9a7b2c"})

    def answer(request: MockRequest) -> Response:
        return Response(
            200, {"content-type": "application/json"}, saved if request.body else stored
        )

    return tac.CouchDB("http://localhost:5984", transport=MockTransport(answer)).database("bench")


def operations() -> dict[str, Callable[[], object]]:
    """The measured operations, on one document of :class:`Customer`."""
    ring = KeyRing([Key("k1", b"\x01" * 32)], active="k1")
    protection = Protection.from_keyring(ring)
    model = customer()
    doc = model.to_doc()
    markers = dict(Customer.field_markers(Encrypted))
    contexts = {n: FieldContext(str(model.id), "customer", n, m) for n, m in markers.items()}
    cipher = protection.encrypted.cipher
    sealed = {name: cipher.encrypt(doc[name], contexts[name], markers[name]) for name in markers}
    signed = protection.signature.sign(doc)

    def encrypt_two() -> None:
        for name, marker in markers.items():
            cipher.encrypt(doc[name], contexts[name], marker)

    def decrypt_two() -> None:
        for name in markers:
            cipher.decrypt(sealed[name], contexts[name])

    return {
        "to_doc": model.to_doc,
        "from_doc": lambda: Customer.from_doc(doc),
        "sign": lambda: protection.signature.sign(doc),
        "verify": lambda: protection.signature.verify(signed),
        "encrypt_two": encrypt_two,
        "decrypt_two": decrypt_two,
    }


# Each protection step against the model step, and the whole model operation, of its side.
SIDES = {"sign": "save", "verify": "get", "encrypt_two": "save", "decrypt_two": "get"}
STEPS = {"save": "to_doc", "get": "from_doc"}
RATIOS = {
    **{f"{name}/step": (name, STEPS[side]) for name, side in SIDES.items()},
    **{f"{name}/whole": (name, f"db_{side}") for name, side in SIDES.items()},
}


def measure(calls: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Medians over ``rounds`` of µs per call, and of each step's ratio to its bases.

    The operations alternate within each round, so that a change of machine load (the
    machine is shared) touches both sides of a ratio alike.
    """
    ops = operations()
    model = customer()
    with asyncio.Runner() as runner:
        db = mock_database(model)
        whole: dict[str, Callable[[], Awaitable[object]]] = {
            "db_get": lambda: db.get(Customer, str(model.id)),
            "db_save": lambda: db.save(model),
        }
        try:
            return _rounds(runner, ops, whole, calls, rounds)
        finally:
            runner.run(db.couch.aclose())


def _rounds(
    runner: asyncio.Runner,
    ops: dict[str, Callable[[], object]],
    whole: dict[str, Callable[[], Awaitable[object]]],
    calls: int,
    rounds: int,
) -> tuple[dict[str, float], dict[str, float]]:
    warm = max(10, calls // 10)  # (caches: derived keys, pydantic, the pool)
    for operation in ops.values():
        per_op_us(operation, warm)
    for coroutine in whole.values():
        per_op_async_us(runner, coroutine, warm)
    samples: dict[str, list[float]] = {name: [] for name in (*ops, *whole)}
    ratios: dict[str, list[float]] = {ratio: [] for ratio in RATIOS}
    for _ in range(rounds):
        gc.collect()
        found = {name: per_op_us(operation, calls) for name, operation in ops.items()}
        found.update({n: per_op_async_us(runner, c, calls) for n, c in whole.items()})
        for name, value in found.items():
            samples[name].append(value)
        for ratio, (name, base) in RATIOS.items():
            ratios[ratio].append(found[name] / found[base])
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return medians, {name: statistics.median(values) for name, values in ratios.items()}


def argon2_ms(policy: Argon2Policy, hashes: int) -> float:
    hasher = policy.hasher()
    samples = []
    for n in range(hashes):
        start = time.process_time_ns()
        hasher.hash(f"password {n}")
        samples.append((time.process_time_ns() - start) / 1e6)
    return statistics.median(samples)


LABELS = {
    "to_doc": "model `to_doc` (save side)",
    "from_doc": "model `from_doc` (get side)",
    "db_save": "model `db.save`, mock transport",
    "db_get": "model `db.get`, mock transport",
    "sign": "sign",
    "verify": "verify",
    "encrypt_two": "encrypt two fields (one with a blind index)",
    "decrypt_two": "decrypt two fields (the blind index checked)",
}


def report(
    medians: dict[str, float], ratios: dict[str, float], argon: float, policy: Argon2Policy
) -> str:
    lines = [
        "| per document | µs | x model step | x whole model op |",
        "|---|---:|---:|---:|",
    ]
    for name, label in LABELS.items():
        step, whole = ratios.get(f"{name}/step"), ratios.get(f"{name}/whole")
        cells = [f"{r:.2f}x" if r is not None else "" for r in (step, whole)]
        lines.append(f"| {label} | {medians[name]:.1f} | {cells[0]} | {cells[1]} |")
    lines.append(
        f"\nargon2id at m={policy.memory_kib} KiB t={policy.time_cost} p={policy.parallelism}: "
        f"{argon:.1f} ms per hash (median; run in a thread by the codec)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per operation and round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (medians are reported)")
    parser.add_argument("--hashes", type=int, default=5, help="argon2id hashes to time")
    args = parser.parse_args()
    if args.calls < 10 or args.rounds < 1 or args.hashes < 1:
        parser.error("--calls must be at least 10, --rounds and --hashes at least 1")
    policy = Argon2Policy()
    medians, ratios = measure(args.calls, args.rounds)
    print(report(medians, ratios, argon2_ms(policy, args.hashes), policy))


if __name__ == "__main__":
    main()
