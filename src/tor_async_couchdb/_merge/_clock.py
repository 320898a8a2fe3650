"""A hybrid logical clock: stamps that follow causality even when wall clocks disagree.

A :class:`Stamp` is ``(wall, logical, node)``: milliseconds of the wall clock, a counter that
orders events within one millisecond (or after a clock that ran ahead), and the id of the node
that made it, which breaks ties so that stamps are totally ordered. A node that has seen a
stamp (it read the document that carries it) makes only larger stamps for that document, so a
write that causally follows another always wins a last-writer-wins register, however far behind
its wall clock is. Bare wall-clock time cannot promise that: a writer whose clock runs ahead
would win against every later write until real time catches up.

The cap (``max_ahead``): a stamp more than ``max_ahead`` ahead of this node's wall clock is
followed for the document that carries it (the write is still ordered after it), but is not
adopted by the clock itself. Otherwise one node with a bad clock would drag every node that
ever read one of its documents ahead with it, and all of their later writes everywhere would
carry the bad time. Such stamps are counted (:attr:`HybridClock.skew_events`) and logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, NamedTuple

from .._exceptions import InvalidInputError

__all__ = ["HybridClock", "Stamp", "parse_stamp", "wall_clock_ms"]

logger = logging.getLogger("tor_async_couchdb.merge")

# A node id is written into every stamp; keep it short and free of the separators.
_NODE_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_STAMP_RE: Final = re.compile(r"(?P<wall>[0-9]{13})\.(?P<logical>[0-9]{4,9})@(?P<node>.+)")
_MAX_LOGICAL: Final = 999_999_999


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system's wall clock."""
    return time.time_ns() // 1_000_000


class Stamp(NamedTuple):
    """One instant of a hybrid logical clock; compares as ``(wall, logical, node)``."""

    wall: int
    logical: int
    node: str

    def __str__(self) -> str:
        # Fixed widths: the stored strings sort like the stamps (until the year 2286).
        return f"{self.wall:013d}.{self.logical:04d}@{self.node}"


def parse_stamp(text: object) -> Stamp:
    """Read a stored stamp. Raises :class:`InvalidInputError` if it is not one."""
    match = _STAMP_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None or not _NODE_RE.fullmatch(match["node"]):
        raise InvalidInputError(f"not a clock stamp: {text!r}")
    return Stamp(int(match["wall"]), int(match["logical"]), match["node"])


def check_node_id(node: object) -> str:
    """Return ``node`` if it is a valid node (writer) id, else raise InvalidInputError."""
    if not isinstance(node, str) or not _NODE_RE.fullmatch(node):
        raise InvalidInputError(f"a node id must match [A-Za-z0-9_.:-]{{1,64}}, not {node!r}")
    return node


@dataclass(frozen=True, slots=True)
class _State:
    wall: int
    logical: int


class HybridClock:
    """The hybrid logical clock of one writer: one per process (and per database it writes).

    ``node`` is the writer id written into stamps and counter entries. It must be unique among
    the processes writing at the same time; reusing a stable id for a process slot (a worker
    index) keeps the metadata of counters bounded by the number of slots. ``max_ahead`` caps how
    far a remote stamp may be ahead of the wall clock for the clock to adopt it (see the module
    docstring); ``now`` is the wall clock in milliseconds (tests pass a fake one).
    """

    __slots__ = ("_lock", "_now", "_state", "max_ahead_ms", "node", "skew_events")

    def __init__(
        self,
        node: str,
        *,
        max_ahead: timedelta = timedelta(minutes=1),
        now: Callable[[], int] = wall_clock_ms,
    ) -> None:
        """Raises :class:`InvalidInputError` for a bad node id or a negative cap."""
        self.node = check_node_id(node)
        if max_ahead < timedelta(0):
            raise InvalidInputError(f"max_ahead must not be negative: {max_ahead}")
        self.max_ahead_ms = max_ahead // timedelta(milliseconds=1)
        self._now = now
        self._state = _State(0, 0)
        # Services may write from threads too; the critical section is a few integer ops.
        self._lock = threading.Lock()
        self.skew_events = 0

    def __repr__(self) -> str:
        return f"HybridClock(node={self.node!r}, max_ahead_ms={self.max_ahead_ms})"

    def tick(self) -> Stamp:
        """A new stamp, larger than every stamp this clock made or adopted before."""
        return self.after(())

    def after(self, seen: Iterable[Stamp]) -> Stamp:
        """A new stamp larger than every stamp in ``seen`` and every one this clock made.

        Stamps within the cap are adopted by the clock (the usual HLC receive rule); a stamp
        beyond it is only stepped over for this one result, and counted in
        :attr:`skew_events`.
        """
        latest = max(seen, default=None)
        with self._lock:
            wall = self._now()
            state = self._state
            local = max(state, _State(wall, -1), key=lambda s: (s.wall, s.logical))
            if latest is not None and (latest.wall, latest.logical) >= (local.wall, local.logical):
                if latest.wall - wall <= self.max_ahead_ms:
                    local = _State(latest.wall, latest.logical)
                else:
                    self.skew_events += 1
                    logger.warning(
                        "stamp %s is %d ms ahead of this clock (cap %d ms): followed for this "
                        "write only",
                        latest,
                        latest.wall - wall,
                        self.max_ahead_ms,
                    )
                    return Stamp(latest.wall, _next_logical(latest.logical), self.node)
            self._state = _State(local.wall, _next_logical(local.logical))
            return Stamp(self._state.wall, self._state.logical, self.node)


def _next_logical(logical: int) -> int:
    if logical >= _MAX_LOGICAL:
        # A billion writes within one millisecond of one document: a stamp runaway, not load.
        raise InvalidInputError("the clock's logical counter overflowed")
    return logical + 1
