"""Client-made document ids: order, uniqueness across processes and threads, fork safety; checks."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from tor_async_couchdb._exceptions import InvalidInputError, InvalidNameError
from tor_async_couchdb._ids import IdGenerator, check_doc_id, id_timestamp, is_valid_doc_id, new_id

HEX32 = re.compile(r"[0-9a-f]{32}")


def fake_clock(*millis: int) -> Callable[[], int]:
    """A clock returning ``millis`` in turn, then repeating the last one."""
    values: Iterator[int] = iter(millis)
    last = [millis[0]]

    def now() -> int:
        last[0] = next(values, last[0])
        return last[0]

    return now


def _ids_in_child(count: int) -> list[str]:
    return [new_id() for _ in range(count)]


def test_an_id_is_32_lower_case_hex_digits() -> None:
    assert HEX32.fullmatch(new_id())


def test_the_id_starts_with_the_creation_millisecond() -> None:
    generator = IdGenerator(clock_ms=fake_clock(1_764_243_361_123))
    doc_id = generator()
    assert doc_id.startswith(f"{1_764_243_361_123:012x}0000")
    assert id_timestamp(doc_id) == datetime(2025, 11, 27, 11, 36, 1, 123000, tzinfo=UTC)


def test_a_million_ids_are_strictly_increasing() -> None:
    generator = IdGenerator()
    ids = [generator() for _ in range(1_000_000)]
    assert all(a < b for a, b in pairwise(ids))
    assert len(set(ids)) == len(ids)


def test_ids_keep_increasing_when_the_clock_goes_back() -> None:
    generator = IdGenerator(clock_ms=fake_clock(5_000, 5_000, 4_000, 10, 5_000, 5_001, 4_999))
    ids = [generator() for _ in range(7)]
    assert all(a < b for a, b in pairwise(ids))
    assert [int(i[:12], 16) for i in ids] == [5_000] * 5 + [5_001] * 2


def test_a_full_millisecond_borrows_the_next_one() -> None:
    generator = IdGenerator(clock_ms=fake_clock(7_000))
    ids = [generator() for _ in range(0x10000 + 2)]
    assert all(a < b for a, b in pairwise(ids))
    assert ids[0x10000].startswith(f"{7_001:012x}0000")


def test_ids_made_in_the_same_millisecond_differ_in_their_random_tail() -> None:
    first, second = IdGenerator(clock_ms=fake_clock(9)), IdGenerator(clock_ms=fake_clock(9))
    a, b = first(), second()
    assert a[:16] == b[:16]
    assert a[16:] != b[16:]


def test_threads_sharing_a_generator_get_distinct_ids() -> None:
    generator = IdGenerator()
    results: list[list[str]] = [[] for _ in range(4)]

    def work(out: list[str]) -> None:
        out.extend(generator() for _ in range(50_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [doc_id for out in results for doc_id in out]
    assert len(set(every)) == len(every) == 200_000
    assert all(all(a < b for a, b in pairwise(out)) for out in results)


def test_processes_do_not_collide() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        batches = list(pool.map(_ids_in_child, [200_000] * 4))
    every = [doc_id for batch in batches for doc_id in batch]
    assert len(set(every)) == len(every) == 800_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    # A stopped clock makes parent and child produce the same timestamps and counters, so only
    # the random tails keep them apart: the child must not reuse the inherited random batch.
    generator = IdGenerator(clock_ms=fake_clock(42))
    generator()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a threaded process"
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write_end, " ".join(generator() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    parent_ids = {generator() for _ in range(100)}
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = set(pipe.read().decode().split())
    os.waitpid(pid, 0)
    assert len(child_ids) == 100
    assert not parent_ids & child_ids


@pytest.mark.parametrize(
    "doc_id", ["a", "0192f0c1a2b300005e0c9d3f7a1b2c4d", "_design/fruit", "_local/x", "é/ü x"]
)
def test_valid_doc_ids(doc_id: str) -> None:
    assert check_doc_id(doc_id) == doc_id
    assert is_valid_doc_id(doc_id)


@pytest.mark.parametrize(
    "doc_id", ["", "_x", "_design", "_design/", "_local/", "_users", "bad\udc80", None, 1, b"a"]
)
def test_invalid_doc_ids(doc_id: object) -> None:
    assert not is_valid_doc_id(doc_id)
    with pytest.raises(InvalidNameError):
        check_doc_id(doc_id)


def test_special_ids_can_be_refused() -> None:
    assert not is_valid_doc_id("_design/fruit", allow_special=False)
    with pytest.raises(InvalidNameError, match="must not start with '_'"):
        check_doc_id("_local/x", allow_special=False)


def test_an_invalid_id_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        check_doc_id("")
    assert issubclass(InvalidNameError, InvalidInputError)


@pytest.mark.parametrize("doc_id", ["xyz", "0192F0C1A2B300005E0C9D3F7A1B2C4D", "0" * 31])
def test_id_timestamp_refuses_foreign_ids(doc_id: str) -> None:
    with pytest.raises(InvalidNameError):
        id_timestamp(doc_id)
