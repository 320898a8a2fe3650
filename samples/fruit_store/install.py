"""Installing the fruit store's database with the library's installer (``tac.ops``)."""

from __future__ import annotations

import tor_async_couchdb as tac
from tor_async_couchdb import ops

from .models import Fruit

# The role the service's own CouchDB user would have; admins (the installer, replication,
# the embedded server's account) pass anyway.
MEMBER_ROLE = "fruit_store"


def install_spec(
    database: str, protection: tac.Protection, *, guarded: bool = True
) -> ops.InstallSpec:
    """What the database holds: the views of :class:`Fruit` and, if ``guarded``, ``_security``
    and the server-side guard refusing unsigned writes by non-admins (the service signs its
    documents).

    ``guarded=False`` is for the multi-master demo on embedded servers only: pouchdb-server's
    replicator writes as an anonymous user (it ignores credentials in the object form), so the
    guard refuses what it replicates that is not signed (design documents, and the
    reconciler's tombstones, which the library does not sign), and its continuous
    replication stalls at the first refusal. Against CouchDB, replicate with admin
    credentials and keep the guard.
    """
    return ops.InstallSpec.build(
        database,
        models=[Fruit],
        security=ops.Security(member_roles=(MEMBER_ROLE,)) if guarded else None,
        signature=protection.signature if guarded else None,
    )


async def install(
    couch: tac.CouchDB, database: str, protection: tac.Protection, *, guarded: bool = True
) -> dict[str, int]:
    """Create or upgrade the database (idempotent); the counts of what changed."""
    report = await ops.install(couch, install_spec(database, protection, guarded=guarded))
    return report.plan.counts()
