"""A bounded wait for what a CouchDB cluster promises only eventually.

A cluster serves views, ``_all_docs`` and ``_changes`` from one copy of each shard, which may lag
a write for a moment: tests that read right after writing wait for the condition with a bound,
and then assert the library's own guarantees strictly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """Return once ``check()`` is true; raise AssertionError if it is not within ``within``
    seconds (polling every 0.2 s)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.2)
