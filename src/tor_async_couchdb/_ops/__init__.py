"""Operations over the public API: install and upgrade, health, metrics, compaction, replication.

Each module holds one idea; :mod:`tor_async_couchdb.ops` is the public face and the CLI
(:mod:`tor_async_couchdb.cli`) a thin layer over it.
"""

from ._health import Check, HealthReport, check_health
from ._install import InstallProgress, InstallReport, Plan, PlanItem, WarmUp, install, plan_install
from ._metrics import (
    CompactionProgress,
    CompactionReport,
    DatabaseMetrics,
    Sizes,
    ViewMetrics,
    collect_metrics,
    compact,
    design_ids,
)
from ._replication import (
    Endpoint,
    ReplicationDoc,
    ReplicationState,
    replication_name,
    replication_status,
    setup_replication,
)
from ._sources import (
    InstallSpec,
    Security,
    design_docs_from_folder,
    models_from_module,
    package_folder,
    seed_docs_from_folder,
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
