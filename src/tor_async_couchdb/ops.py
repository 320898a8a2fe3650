"""Operations on a service's database, as a Python API (the CLI runs the same code).

An installer in a few lines::

    import tor_async_couchdb as tac
    from tor_async_couchdb import ops

    spec = ops.InstallSpec.build("fruit_store", model_modules=["myservice.models"])
    async with tac.CouchDB(url, auth=auth) as couch:
        print((await ops.plan_install(couch, spec)).counts())   # what would change
        await ops.install(couch, spec)                          # idempotent, no query blocked
        report = await ops.check_health(couch, "fruit_store", design_docs=spec.design_docs)

See ``docs/operations.md``.
"""

from ._ops import (
    Check,
    CompactionProgress,
    CompactionReport,
    DatabaseMetrics,
    Endpoint,
    HealthReport,
    InstallProgress,
    InstallReport,
    InstallSpec,
    Plan,
    PlanItem,
    ReplicationDoc,
    ReplicationState,
    Security,
    Sizes,
    ViewMetrics,
    WarmUp,
    check_health,
    collect_metrics,
    compact,
    design_docs_from_folder,
    design_ids,
    install,
    models_from_module,
    package_folder,
    plan_install,
    replication_name,
    replication_status,
    seed_docs_from_folder,
    setup_replication,
)

__all__ = [
    "Check",
    "CompactionProgress",
    "CompactionReport",
    "DatabaseMetrics",
    "Endpoint",
    "HealthReport",
    "InstallProgress",
    "InstallReport",
    "InstallSpec",
    "Plan",
    "PlanItem",
    "ReplicationDoc",
    "ReplicationState",
    "Security",
    "Sizes",
    "ViewMetrics",
    "WarmUp",
    "check_health",
    "collect_metrics",
    "compact",
    "design_docs_from_folder",
    "design_ids",
    "install",
    "models_from_module",
    "package_folder",
    "plan_install",
    "replication_name",
    "replication_status",
    "seed_docs_from_folder",
    "setup_replication",
]
