"""A save_many cut short by a dead server: the error says what was saved, and finishing the job
creates no duplicate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb.testing import CouchServer

_FAST = tac.RetryPolicy(max_retries=2, backoff=0.01, max_backoff=0.05)


class Item(tac.Model, type_name="bulk_item", version="1.0"):
    number: int


async def _stored_ids(db: tac.Database) -> list[str]:
    return [row["id"] async for row in db.all_docs() if not row["id"].startswith("_design")]


@pytest.mark.embedded_only  # it kills and restarts its server: only one the suite started
@pytest.mark.timeout(180)
async def test_killed_server_in_save_many_reports_each_document(
    extra_servers: Callable[..., CouchServer],
) -> None:
    server = extra_servers()
    assert server.embedded is not None
    embedded = server.embedded
    bulk_requests = 0

    def kill_after_three_chunks(record: tac.RequestRecord) -> None:
        nonlocal bulk_requests
        if record.method == "POST" and record.url.endswith("/_bulk_docs"):
            bulk_requests += 1
            if bulk_requests == 3:
                embedded.kill_sync()

    timeouts = tac.Timeouts(connect=2.0, read=10.0, pool=2.0)
    async with tac.CouchDB(
        server.url,
        auth=server.auth,
        timeouts=timeouts,
        retry=_FAST,
        on_request=kill_after_three_chunks,
    ) as client:
        db = client.database("bulk_faults")
        await db.create()
        models = [Item(number=n) for n in range(5000)]
        with pytest.raises(tac.BulkWriteError) as caught:
            await db.save_many(models)
        error = caught.value
        assert isinstance(error.__cause__, tac.TransportError)
        assert len(error.results) == 1500
        assert all(result.ok for result in error.results)
        assert len(error.unknown) == 500
        assert len(error.unsent) == 3000
        # Every model is reported once, with the id it was sent with, in order.
        reported = [r.model for r in error.results] + error.unknown + error.unsent
        assert [m.number for m in reported] == list(range(5000))
        assert all(m.id is not None for m in error.unknown + error.unsent)

        await embedded.restart()
        stored = set(await _stored_ids(db))
        saved_ids = {r.model.id for r in error.results}
        unknown_ids = {m.id for m in error.unknown}
        assert saved_ids <= stored
        assert stored - saved_ids <= unknown_ids  # anything else written was in the lost chunk
        assert not stored & {m.id for m in error.unsent}

        # As if the server had written part of the lost chunk before its answer was lost:
        lost_answer = error.unknown[:100]
        assert all(r.ok for r in await db.save_many(lost_answer))
        again = await db.save_many(error.unknown + error.unsent)
        conflicts = [r.model.id for r in again if isinstance(r.error, tac.Conflict)]
        assert conflicts == [m.id for m in lost_answer]  # read back, not written twice
        assert sum(r.ok for r in again) == 3400
        final = await _stored_ids(db)
        assert len(final) == 5000 == len(set(final))
        numbers = sorted([item.number async for item in db.get_many(Item, final)])
        assert numbers == list(range(5000))
