"""The store: persistence of models. Its ``CouchDB`` and ``Database`` extend the raw layer's by
subclassing; its mapper is the one seam between documents and models, where codecs run."""

from ._build import BuildProgress
from ._client import CouchDB
from ._database import Change, Database
from ._mapper import Codec, Mapper
from ._merging import Conflicts
from ._migrate import MigrationProgress
from ._quarantine import StoreStats
from ._results import SaveResult
from ._rotate import RotationProgress

__all__ = [
    "BuildProgress",
    "Change",
    "Codec",
    "Conflicts",
    "CouchDB",
    "Database",
    "Mapper",
    "MigrationProgress",
    "RotationProgress",
    "SaveResult",
    "StoreStats",
]
