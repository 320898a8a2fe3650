"""What the store's bulk write reports: one :class:`SaveResult` per model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from .._exceptions import HTTPStatusError
from .._models import Model

__all__ = ["SaveResult"]

M = TypeVar("M", bound=Model)


@dataclass(frozen=True, slots=True)
class SaveResult(Generic[M]):
    """The outcome of one model of :meth:`Database.save_many`.

    ``model`` is the saved model (id and new rev set) when ``ok``; otherwise it is the model as
    sent (with the id it was given) and ``error`` says why it was not written (for example
    :class:`Conflict`). :meth:`unwrap` returns the saved model or raises the error.
    """

    model: M
    error: HTTPStatusError | None = None

    @property
    def ok(self) -> bool:
        """Whether the model was saved."""
        return self.error is None

    def unwrap(self) -> M:
        """Return the saved model. Raises the item's :class:`HTTPStatusError` if it failed."""
        if self.error is not None:
            raise self.error
        return self.model
