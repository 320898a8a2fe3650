"""install_views(..., build=True): the indexes are built before it returns."""

from __future__ import annotations

from typing import Annotated

import pytest

import tor_async_couchdb as tac


class Reading(tac.Model, type_name="build_reading", version="1.0"):
    sensor: Annotated[str, tac.Indexed()]
    value: int


async def test_built_views_answer_stale_queries_with_every_row(db: tac.Database) -> None:
    results = await db.save_many([Reading(sensor=f"s{n % 7}", value=n) for n in range(3000)])
    assert all(result.ok for result in results)
    seen: list[tac.BuildProgress] = []

    async def progress(state: tac.BuildProgress) -> None:
        seen.append(state)

    written = await db.install_views(Reading, build=True, progress=progress)
    assert written
    assert [state.built for state in seen] == list(range(1, len(seen) + 1))
    assert {state.design for state in seen} == set(written)
    assert all(state.total == len(seen) for state in seen)
    for state in seen:
        rows = [row async for row in db.view(state.design, state.view, update="false")]
        assert len(rows) == 3000, (state.design, state.view)
    assert await db.install_views(Reading, build=True, progress=progress) == []
    assert len(seen) == len(written)  # nothing written, nothing built again


@pytest.mark.embedded_only  # what a stale query of an unbuilt index answers is the server's
async def test_without_build_a_stale_query_finds_no_index_yet(db: tac.Database) -> None:
    await db.save_many([Reading(sensor=f"s{n % 7}", value=n) for n in range(300)])
    await db.install_views(Reading)
    design, view = tac.view_location(Reading, "sensor")
    assert [row async for row in db.view(design, view, update="false")] == []
