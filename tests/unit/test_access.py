"""The roles → permissions table and the document rules, as tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bunko.access import (
    ROLE_PERMISSIONS,
    Permission,
    can_manage_document,
    can_read_collection,
    can_read_document,
    document_list_owner,
    has_permission,
    list_scope,
    validate_visibility,
)
from bunko.domain import Principal, Role
from bunko.errors import InvalidInput, PermissionDenied

P = Permission

# The seed's table: Admin everything; Power User upload, query, view all, manage own; User query,
# (upload,) view own; Viewer read-only query.
EXPECTED = {
    "admin": set(Permission),
    "power_user": {P.query, P.documents_upload, P.documents_list, P.documents_manage_own,
                   P.collections_read},
    "user": {P.query, P.documents_upload, P.documents_list, P.documents_manage_own, P.collections_read},
    "viewer": {P.query, P.collections_read},
}


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize("permission", list(Permission))
def test_role_permission_table(role, permission):
    assert has_permission(role, permission) == (permission in EXPECTED[role])


def test_every_role_is_in_the_table_and_unknown_roles_get_nothing():
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert not any(has_permission("superuser", p) for p in Permission)


@dataclass
class Doc:
    owner_id: str
    visibility: str
    allowed_roles: list[str] = field(default_factory=list)


ME, OTHER = "u-me", "u-other"
DOCS = {
    "own_private": Doc(ME, "private"),
    "other_private": Doc(OTHER, "private"),
    "other_collection": Doc(OTHER, "collection"),
    "other_roles_user": Doc(OTHER, "roles", ["user"]),
    "other_roles_viewer": Doc(OTHER, "roles", ["viewer"]),
    "other_roles_admin": Doc(OTHER, "roles", ["admin"]),
    "unowned_private": Doc("", "private"),
}
# Retrieval ACL (bunko.retrieve.acl): admin all; power_user non-private + own; user/viewer
# collection-visible + own + roles listing their role.
READABLE = {
    "admin": set(DOCS),
    "power_user": {"own_private", "other_collection", "other_roles_user", "other_roles_viewer",
                   "other_roles_admin"},
    "user": {"own_private", "other_collection", "other_roles_user"},
    "viewer": {"own_private", "other_collection", "other_roles_viewer"},
}


@pytest.mark.parametrize("role", list(READABLE))
@pytest.mark.parametrize("doc_name", list(DOCS))
def test_document_read_rule(role, doc_name):
    assert can_read_document(Principal(ME, role), DOCS[doc_name]) == (doc_name in READABLE[role])


def test_an_empty_user_id_owns_nothing():
    assert not can_read_document(Principal("", "user"), DOCS["unowned_private"])


@pytest.mark.parametrize(("role", "own", "other"), [
    ("admin", True, True), ("power_user", True, False), ("user", True, False), ("viewer", False, False),
])
def test_manage_rule(role, own, other):
    p = Principal(ME, role)
    assert can_manage_document(p, Doc(ME, "collection")) == own
    assert can_manage_document(p, Doc(OTHER, "collection")) == other


def test_list_scopes():
    assert [list_scope(Principal(ME, r)) for r in ("admin", "power_user", "user", "viewer")] == [
        "all", "acl", "own", "none"]
    assert document_list_owner(Principal(ME, "admin"), OTHER) == (OTHER, False)
    assert document_list_owner(Principal(ME, "power_user"), None) == (None, True)
    assert document_list_owner(Principal(ME, "user"), None) == (ME, False)
    with pytest.raises(PermissionDenied):
        document_list_owner(Principal(ME, "user"), OTHER)
    with pytest.raises(PermissionDenied):
        document_list_owner(Principal(ME, "viewer"), None)


@pytest.mark.parametrize(("visibility", "roles", "readers"), [
    ("collection", [], {"admin", "power_user", "user", "viewer"}),
    ("roles", ["viewer"], {"admin", "power_user", "viewer"}),
    ("private", [], {"admin"}),
])
def test_collection_read_rule(visibility, roles, readers):
    coll = Doc("", visibility, roles)
    assert {r.value for r in Role if can_read_collection(Principal(ME, r.value), coll)} == readers


def test_validate_visibility():
    assert validate_visibility("roles", ["user", " viewer", "user"]) == ("roles", ["user", "viewer"])
    for bad in [("public", []), ("roles", []), ("roles", ["root"])]:
        with pytest.raises(InvalidInput):
            validate_visibility(*bad)
