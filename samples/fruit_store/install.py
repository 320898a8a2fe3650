"""Installing the fruit store's database with the library's installer (``tac.ops``)."""

from __future__ import annotations

import tor_async_couchdb as tac
from tor_async_couchdb import ops

from .models import Fruit

# The role the service's own CouchDB user would have; admins (the installer, replication,
# the embedded server's account) pass anyway.
MEMBER_ROLE = "fruit_store"


def install_spec(database: str, protection: tac.Protection) -> ops.InstallSpec:
    """What the database holds: the views of :class:`Fruit`, ``_security`` and, because the
    service signs its documents, the server-side guard refusing unsigned writes."""
    return ops.InstallSpec.build(
        database,
        models=[Fruit],
        security=ops.Security(member_roles=(MEMBER_ROLE,)),
        signature=protection.signature,
    )


async def install(couch: tac.CouchDB, database: str, protection: tac.Protection) -> dict[str, int]:
    """Create or upgrade the database (idempotent); the counts of what changed."""
    report = await ops.install(couch, install_spec(database, protection))
    return report.plan.counts()
