"""What a run measured: latencies and statuses per operation, and the final report."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class OperationStats:
    """One operation's latencies (seconds) and answers by status (0: no answer)."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def errors(self, *, expected: frozenset[int] = frozenset()) -> dict[str, int]:
        """Answers that are errors (no answer, 4xx, 5xx) but for ``expected`` statuses."""
        return {
            str(s): n
            for s, n in sorted(self.statuses.items())
            if (s == 0 or s >= 400) and s not in expected
        }

    def summary(self, elapsed: float, *, expected: frozenset[int] = frozenset()) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        errors = self.errors(expected=expected)
        return {
            "count": len(ordered),
            "per_second": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(ordered, 0.50) * 1000, 1),
            "p95_ms": round(percentile(ordered, 0.95) * 1000, 1),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 1),
            "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "errors": errors,
        }


@dataclass(slots=True)
class Recorder:
    """Everything measured during the run."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    operations: dict[str, OperationStats] = field(default_factory=dict)
    conflicts_retried: int = 0

    def record(self, operation: str, status: int, seconds: float) -> None:
        stats = self.operations.get(operation)
        if stats is None:
            stats = self.operations[operation] = OperationStats()
        stats.latencies.append(seconds)
        stats.statuses[status] += 1

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def total(self) -> int:
        return sum(len(stats.latencies) for stats in self.operations.values())

    def count_where(self, wanted: Any) -> int:
        """Answers whose status satisfies ``wanted(status)``, over every operation."""
        return sum(
            n for stats in self.operations.values() for s, n in stats.statuses.items() if wanted(s)
        )

    def report(self, **extra: Any) -> dict[str, Any]:
        elapsed = self.elapsed
        errors: Counter[str] = Counter()
        for name, stats in self.operations.items():
            errors.update(stats.errors(expected=_expected(name)))
        return {
            "elapsed_s": round(elapsed, 2),
            "requests": self.total,
            "requests_per_second": round(self.total / elapsed, 1) if elapsed else 0.0,
            "server_errors_5xx": self.count_where(lambda s: s >= 500),
            "no_answer": self.count_where(lambda s: s == 0),
            "errors_by_status": dict(sorted(errors.items())),
            "conflicts_retried": self.conflicts_retried,
            "operations": {
                name: stats.summary(elapsed, expected=_expected(name))
                for name, stats in sorted(self.operations.items())
            },
            **extra,
        }


def _expected(operation: str) -> frozenset[int]:
    # A read or update of a fruit deleted meanwhile is rightly answered 404 (see users.py).
    return frozenset({404}) if operation.endswith("_of_deleted") else frozenset()
