"""Waiting for a condition that other tasks (or servers) bring about."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], *, seconds: float = 30, poll: float = 0.05
) -> None:
    """Return once ``predicate`` holds; raise :class:`TimeoutError` after ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            result = predicate()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(poll)
