"""The end-of-run check: every write the service acknowledged is reflected in what it serves."""

from __future__ import annotations

import asyncio
from typing import Any

from .users import Client, Ledger

# Deleted and live fruits are read back one by one up to this many each; the hot set always.
MAX_READ_BACK = 2000


async def check(client: Client, ledger: Ledger) -> dict[str, Any]:
    """Compare the service's answers with the ledger; ``ok`` only if nothing is off.

    - hot set: every acknowledged eater is in the set (else a *lost update*), every eater in
      the set was sent (acknowledged or unanswered), and the counter equals the set's size;
    - deletes: every acknowledged delete answers 404 and is in no list (else *resurrected*);
    - creates: every acknowledged, undeleted fruit can be read (else *lost create*).
    """
    hot = await _check_hot(client, ledger)
    resurrected = await _count(client, sorted(ledger.deleted)[:MAX_READ_BACK], want=404)
    listed = await _listed_ids(client)
    resurrected_in_list = len(listed & ledger.deleted)
    lost_creates = await _count(client, sorted(ledger.alive)[:MAX_READ_BACK], want=200)
    ok = (
        hot["lost_updates"] == 0
        and hot["phantom_eaters"] == 0
        and hot["counter_mismatches"] == 0
        and resurrected == resurrected_in_list == lost_creates == 0
    )
    return {
        "ok": ok,
        **hot,
        "deletes_acknowledged": len(ledger.deleted),
        "resurrected_deletes": resurrected + resurrected_in_list,
        "creates_alive": len(ledger.alive),
        "lost_creates": lost_creates,
        "fruits_listed": len(listed),
    }


async def _check_hot(client: Client, ledger: Ledger) -> dict[str, int]:
    lost = phantom = mismatched = acknowledged = 0
    for fruit_id in ledger.hot:
        answer = await client.send("GET", f"/v1.0/fruits/{fruit_id}")
        if answer.status != 200:
            raise RuntimeError(f"hot fruit {fruit_id} answered {answer.status} at the check")
        stored = set(answer.body["eaten_by"])
        acked = ledger.eaters.get(fruit_id, set())
        acknowledged += len(acked)
        lost += len(acked - stored)
        phantom += len(stored - acked - ledger.maybe_eaters.get(fruit_id, set()))
        mismatched += answer.body["eaten"] != len(stored)
    return {
        "increments_acknowledged": acknowledged,
        "lost_updates": lost,
        "phantom_eaters": phantom,
        "counter_mismatches": mismatched,
    }


async def _count(client: Client, fruit_ids: list[str], *, want: int) -> int:
    """How many of ``fruit_ids`` do not answer ``want`` (read 20 at a time)."""
    wrong = 0
    for start in range(0, len(fruit_ids), 20):
        batch = fruit_ids[start : start + 20]
        answers = await asyncio.gather(*(client.send("GET", f"/v1.0/fruits/{f}") for f in batch))
        wrong += sum(answer.status != want for answer in answers)
    return wrong


async def _listed_ids(client: Client) -> set[str]:
    """Every fruit id the list endpoint shows, page by page."""
    seen: set[str] = set()
    cursor: str | None = None
    while True:
        query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
        answer = await client.send("GET", "/v1.0/fruits" + query)
        if answer.status != 200:
            raise RuntimeError(f"the list answered {answer.status} at the check")
        seen.update(fruit["fruit_id"] for fruit in answer.body["fruits"])
        cursor = answer.body["next_cursor"]
        if cursor is None:
            return seen
