"""Server-side defence in depth, as the installer applies it: a ``_security`` object and a
``validate_doc_update`` design document.

A server cannot check an HMAC (it does not hold the keys), but it can refuse writes that carry
no signature envelope at all, so that a member who writes around the library is stopped at the
door instead of detected at the next read. Server admins are let through: they can change the
design document anyway, and the installer and replication run as admins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from .._exceptions import InvalidInputError
from ._signing import SIGNATURE_FIELD

__all__ = ["DESIGN_ID", "security_object", "validate_doc_update_design"]

DESIGN_ID: Final = "_design/tac_protect"

# ES5 only: CouchDB 3 runs SpiderMonkey, pouchdb-server runs it in Node; both accept this.
_VALIDATE: Final = """function (newDoc, oldDoc, userCtx, secObj) {
  if (userCtx.roles.indexOf('_admin') !== -1) { return; }
  var sig = newDoc[FIELD];
  var ok = sig !== null && typeof sig === 'object' && sig.v === 1 &&
    typeof sig.alg === 'string' && typeof sig.kid === 'string' && typeof sig.sig === 'string';
  if (!ok) {
    throw({forbidden: 'unsigned write refused: documents are written through the application'});
  }
}"""


def validate_doc_update_design(*, field: str = SIGNATURE_FIELD) -> dict[str, Any]:
    """The design document (``_id`` :data:`DESIGN_ID`) whose ``validate_doc_update`` refuses
    writes by non-admin users that lack a signature envelope in ``field``."""
    if not field or field.startswith("_"):
        raise InvalidInputError(f"the signature field must not start with '_': {field!r}")
    source = _VALIDATE.replace("FIELD", json.dumps(field), 1)
    return {"_id": DESIGN_ID, "language": "javascript", "validate_doc_update": source}


def security_object(
    *,
    member_names: Iterable[str] = (),
    member_roles: Iterable[str] = (),
    admin_names: Iterable[str] = (),
    admin_roles: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``_security`` object that makes the application tier's user or role the only
    members. Raises :class:`InvalidInputError` without any member: CouchDB would then make the
    database public."""
    members = {"names": sorted(set(member_names)), "roles": sorted(set(member_roles))}
    if not members["names"] and not members["roles"]:
        raise InvalidInputError("a _security object without members leaves the database public")
    admins = {"names": sorted(set(admin_names)), "roles": sorted(set(admin_roles))}
    return {"admins": admins, "members": members}
