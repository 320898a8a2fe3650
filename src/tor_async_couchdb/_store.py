"""Persistence of models on a database handle: save, get, queries, update with retry."""

from __future__ import annotations

__all__ = ["ModelMethods"]


class ModelMethods:
    """The model-level methods of :class:`Database` (mixed in; see ``_database.py``)."""

    __slots__ = ()
