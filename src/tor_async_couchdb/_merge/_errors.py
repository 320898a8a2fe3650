"""Errors of the merge layer, as branches of the library's one exception tree.

(Kept here while the layers are being moved into packages; they belong in ``_exceptions.py``,
appended to the tree under :class:`InvalidInputError`.)

- :class:`BadLeafError`: a leaf revision cannot take part in a merge. ``kind`` says why
  (:data:`LEAF_PROBLEMS`); it is reported, never guessed around.
- :class:`UnsealedChangeError`: a mergeable model with changes that no clock has stamped was
  about to be written.
"""

from __future__ import annotations

from typing import Final, Literal

from .._exceptions import InvalidInputError

__all__ = ["LEAF_PROBLEMS", "BadLeafError", "LeafProblem", "UnsealedChangeError"]

LeafProblem = Literal["invalid", "newer_version", "tampered", "unreadable_metadata", "no_policy"]
LEAF_PROBLEMS: Final[tuple[LeafProblem, ...]] = (
    "invalid",
    "newer_version",
    "tampered",
    "unreadable_metadata",
    "no_policy",
)


class BadLeafError(InvalidInputError):
    """A leaf revision of a conflicted document that cannot be merged.

    ``kind`` is one of :data:`LEAF_PROBLEMS`: ``invalid`` (its values do not fit the model),
    ``newer_version`` (a ``type`` version this code does not know), ``tampered`` (its signature
    check failed: quarantined), ``unreadable_metadata`` (a policy's metadata is malformed, e.g.
    a hand-edited counter) or ``no_policy`` (its model declares no merge policies).
    """

    def __init__(self, message: str, *, kind: LeafProblem, doc_id: str | None, rev: str | None):
        super().__init__(message)
        self.kind: LeafProblem = kind
        self.doc_id = doc_id
        self.rev = rev


class UnsealedChangeError(InvalidInputError):
    """A mergeable model was written with changes no clock has stamped: call ``seal`` first.

    ``model`` names the class, ``fields`` the changed fields.
    """

    def __init__(self, message: str, *, model: str, fields: tuple[str, ...]) -> None:
        super().__init__(message)
        self.model = model
        self.fields = fields
