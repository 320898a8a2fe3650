"""The one conflict-retry loop: every model operation that meets a 409 and tries again (update,
delete, tombstone, migrate, view installation) runs its attempts through :func:`retry_conflicts`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._config import ConflictRetry
from .._exceptions import Conflict

__all__ = ["retry_conflicts"]

T = TypeVar("T")


async def retry_conflicts(
    policy: ConflictRetry, attempt: Callable[[int], Awaitable[T]], *, note: bool = True
) -> T:
    """Run ``attempt(n)`` (``n`` counts from 0) until it returns, retrying on :class:`Conflict`
    as ``policy`` says: at most ``policy.attempts`` attempts, a backoff between them, none
    started past the deadline. Then the last conflict is raised, with a note naming the
    policy when ``note`` (a caller that did not ask for retries gets the conflict as it came).
    """
    stop_at = None if policy.deadline is None else time.monotonic() + policy.deadline
    number = 0
    while True:
        try:
            return await attempt(number)
        except Conflict as error:
            number += 1
            delay = policy.delay(number)
            out_of_time = stop_at is not None and time.monotonic() + delay >= stop_at
            if number >= policy.attempts or out_of_time:
                if note:
                    error.add_note(f"still conflicting after the retries of {policy!r}")
                raise
        if delay:
            await asyncio.sleep(delay)
