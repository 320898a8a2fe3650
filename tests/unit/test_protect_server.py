"""Server-side defence in depth: the validate_doc_update function (run in Node, as
pouchdb-server runs it) and the _security object."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from support.protect import ring
from tor_async_couchdb._exceptions import InvalidInputError
from tor_async_couchdb._protect import (
    DESIGN_ID,
    SIGNATURE_FIELD,
    HmacSigner,
    SignatureCodec,
    security_object,
    validate_doc_update_design,
)

NODE = shutil.which("node")
ADMIN = {"name": "admin", "roles": ["_admin"]}
APP = {"name": "app", "roles": ["app"]}


def run_validate(new_doc: dict[str, Any], user: dict[str, Any]) -> str:
    """'ok', or the ``forbidden`` reason the function threw."""
    assert NODE is not None
    source = validate_doc_update_design()["validate_doc_update"]
    script = (
        f"var f = ({source});\n"
        f"try {{ f({json.dumps(new_doc)}, null, {json.dumps(user)}, {{}}); console.log('ok'); }}"
        "catch (e) { console.log(e.forbidden || ('other: ' + e)); }"
    )
    done = subprocess.run(
        [NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


def test_design_document_shape() -> None:
    design = validate_doc_update_design()
    assert design["_id"] == DESIGN_ID
    assert design["language"] == "javascript"
    assert json.dumps(SIGNATURE_FIELD) in design["validate_doc_update"]
    with pytest.raises(InvalidInputError):
        validate_doc_update_design(field="_sig")


@pytest.mark.skipif(NODE is None, reason="needs node (the embedded server's runtime)")
def test_unsigned_writes_by_members_are_refused_signed_ones_and_admins_pass() -> None:
    signed = SignatureCodec(HmacSigner(ring("k1"))).sign({"_id": "d1", "type": "x_v1.0"})
    assert run_validate(signed, APP) == "ok"
    assert run_validate({"_id": "d1", "type": "x_v1.0"}, APP).startswith("unsigned write refused")
    assert run_validate({"_id": "d1", "_deleted": True}, APP).startswith("unsigned write refused")
    broken = {**signed, SIGNATURE_FIELD: {"v": 1, "kid": "k1"}}
    assert run_validate(broken, APP).startswith("unsigned write refused")
    assert run_validate({"_id": "d1"}, ADMIN) == "ok"


def test_security_object_makes_the_application_the_only_member() -> None:
    assert security_object(member_roles=["app", "app"], admin_names=["ops"]) == {
        "admins": {"names": ["ops"], "roles": []},
        "members": {"names": [], "roles": ["app"]},
    }
    with pytest.raises(InvalidInputError, match="public"):
        security_object(admin_names=["ops"])
