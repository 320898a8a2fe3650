"""What a load run does: the mix of operations and the run's bounds."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

OPERATIONS = ("create", "read", "update", "delete", "list", "eat")

# 30% of the operations go to the hot set (its counter and set), as the load run asks.
DEFAULT_MIX = {"create": 10, "read": 35, "update": 10, "delete": 5, "list": 10, "eat": 30}


def parse_mix(text: str) -> dict[str, int]:
    """``"create=10,read=40,eat=30"`` as weights; unknown operations and negatives refused."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in OPERATIONS or not weight.isdigit():
            raise ValueError(f"bad mix entry {part!r}: use op=weight, ops {', '.join(OPERATIONS)}")
        mix[name] = int(weight)
    if not any(mix.values()):
        raise ValueError("the mix needs at least one operation with a weight above 0")
    return mix


@dataclass(frozen=True, slots=True)
class Plan:
    """A run: ``users`` virtual users, at most ``concurrency`` requests at once, for
    ``duration`` seconds or ``requests`` requests (whichever ends first). With several
    instances (``url`` comma-separated), user ``n`` keeps to instance ``n % len(urls)``."""

    url: str
    users: int = 50
    concurrency: int = 50
    duration: float = 30.0
    requests: int | None = None
    hot_set: int = 5
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int | None = None

    @property
    def urls(self) -> list[str]:
        """The instances to drive (``url`` may name several, comma-separated)."""
        return [part.strip().rstrip("/") for part in self.url.split(",") if part.strip()]

    def chooser(self) -> random.Random:
        return random.Random(self.seed)

    def pick(self, rng: random.Random) -> str:
        names = [name for name, weight in self.mix.items() if weight > 0]
        return rng.choices(names, weights=[self.mix[n] for n in names])[0]
