"""Who may do what: the roles → permissions table and the document access rules.

The table is the seed's, with one decision written down:

=============  =====================================================================================
role           may
=============  =====================================================================================
admin          everything: users and roles, collections (configuration), every document, the audit
power_user     upload, query, see every non-private document, manage (delete, reprocess) its own
user           upload, query, manage its own documents; its document list shows only its own
               uploads (the seed's "view own uploaded documents")
viewer         query only (read-only): no upload, no document list, no management
=============  =====================================================================================

Decision on *user*: the seed grants "view own uploaded documents", which only makes sense if users
upload, so users may upload. Reading a single document (its metadata, pages, thumbnail, original)
follows the same rule as retrieval for every role, so any source cited in an answer can be opened by
the person who received it, and nothing else can.

The document rule (:func:`can_read_document`) is the one the vector search applies as a filter
expression (``bunko.retrieve.acl``): admin reads everything; power_user reads every non-private
document plus its own; user and viewer read ``collection``-visible documents, their own, and
``roles`` documents that list their role.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, or_, select

from bunko.domain import Principal, Role, Visibility
from bunko.errors import PermissionDenied
from bunko.store.db import Document

if TYPE_CHECKING:
    from bunko.runtime import Runtime


class Permission(enum.StrEnum):
    query = "query"
    documents_upload = "documents:upload"
    documents_list = "documents:list"  # list documents (scope narrowed by role, see list_scope)
    documents_read_all = "documents:read_all"  # ignore the document ACL when reading/listing
    documents_manage_own = "documents:manage_own"  # delete / reprocess documents one owns
    documents_manage_all = "documents:manage_all"  # delete / reprocess any document
    collections_read = "collections:read"
    collections_manage = "collections:manage"
    users_manage = "users:manage"
    audit_read = "audit:read"


_P = Permission

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.power_user: frozenset({
        _P.query, _P.documents_upload, _P.documents_list, _P.documents_manage_own,
        _P.collections_read,
    }),
    Role.user: frozenset({
        _P.query, _P.documents_upload, _P.documents_list, _P.documents_manage_own,
        _P.collections_read,
    }),
    Role.viewer: frozenset({_P.query, _P.collections_read}),
}

ROLES: tuple[str, ...] = tuple(r.value for r in Role)


class DocumentLike(Protocol):
    owner_id: str
    visibility: str
    allowed_roles: list[str]


class CollectionLike(Protocol):
    visibility: str
    allowed_roles: list[str]


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise PermissionDenied(
            f"unknown role {value!r}; roles are {', '.join(ROLES)}", detail={"roles": list(ROLES)}
        ) from None


def permissions_for(role: str) -> frozenset[Permission]:
    """The role's permissions; an unknown role has none (a token from an old scheme grants nothing)."""
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()


def has_permission(role: str, permission: Permission) -> bool:
    return permission in permissions_for(role)


# --- documents ----------------------------------------------------------------------------------


def can_read_document(principal: Principal, doc: DocumentLike) -> bool:
    """The retrieval ACL, for one document (must agree with ``bunko.retrieve.acl``)."""
    role = principal.role
    if role == Role.admin.value:
        return True
    if doc.owner_id and doc.owner_id == principal.user_id:
        return True
    if role == Role.power_user.value:
        return doc.visibility != Visibility.private.value
    if role not in ROLES:
        return False
    if doc.visibility == Visibility.collection.value:
        return True
    return doc.visibility == Visibility.roles.value and role in (doc.allowed_roles or [])


def can_manage_document(principal: Principal, doc: DocumentLike) -> bool:
    """Delete / reprocess: any document for admins, one's own for power users and users."""
    perms = permissions_for(principal.role)
    if Permission.documents_manage_all in perms:
        return True
    return (
        Permission.documents_manage_own in perms
        and bool(doc.owner_id)
        and doc.owner_id == principal.user_id
    )


def list_scope(principal: Principal) -> str:
    """How far a document list reaches for this principal: ``all``, ``acl`` (what they may read),
    ``own`` (their uploads) or ``none``."""
    perms = permissions_for(principal.role)
    if Permission.documents_read_all in perms:
        return "all"
    if Permission.documents_list not in perms:
        return "none"
    return "acl" if principal.role == Role.power_user.value else "own"


# --- collections --------------------------------------------------------------------------------


def can_read_collection(principal: Principal, coll: CollectionLike) -> bool:
    """Collections use the same visibility words: ``collection`` = everyone signed in, ``roles`` =
    the listed roles, ``private`` = admins only. Admins and power users see every non-private one."""
    role = principal.role
    if role == Role.admin.value:
        return True
    if role not in ROLES or coll.visibility == Visibility.private.value:
        return False
    if role == Role.power_user.value or coll.visibility == Visibility.collection.value:
        return True
    return coll.visibility == Visibility.roles.value and role in (coll.allowed_roles or [])


def validate_visibility(visibility: str, allowed_roles: Iterable[str]) -> tuple[str, list[str]]:
    """Check a requested visibility and role list; returns them normalised."""
    from bunko.errors import InvalidInput

    try:
        vis = Visibility(visibility).value
    except ValueError:
        raise InvalidInput(
            f"visibility must be one of {[v.value for v in Visibility]}, not {visibility!r}"
        ) from None
    roles = sorted({r.strip() for r in allowed_roles if r.strip()})
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidInput(f"unknown role(s) {unknown} in allowed_roles; roles are {list(ROLES)}")
    if vis == Visibility.roles.value and not roles:
        raise InvalidInput("visibility 'roles' needs at least one role in allowed_roles")
    return vis, roles


def document_list_owner(principal: Principal, requested_owner: str | None) -> tuple[str | None, bool]:
    """For a document list: (owner filter, hide others' private documents).

    ``all`` (admin): the requested owner filter as given. ``acl`` (power user): as given, and other
    people's private documents are left out. ``own`` (user): always their own; asking for another
    owner is refused. ``none`` (viewer): refused.
    """
    scope = list_scope(principal)
    if scope == "none":
        raise PermissionDenied(f"the role {principal.role!r} may not list documents",
                               detail={"role": principal.role})
    if scope == "own":
        if requested_owner not in (None, "", principal.user_id):
            raise PermissionDenied("you may only list your own documents")
        return principal.user_id, False
    return requested_owner or None, scope == "acl"


def list_visible_documents(
    rt: Runtime, principal: Principal, *, collection_id: str, status: str | None = None,
    owner_id: str | None = None, limit: int = 50, offset: int = 0,
) -> tuple[list[Document], int]:
    """A page of the documents of one collection that ``principal`` may list, newest first, and the
    total. The visibility rule is part of the SQL, so pages and totals are exact."""
    owner, hide_private = document_list_owner(principal, owner_id)
    q = select(Document).where(Document.collection_id == collection_id)
    if status:
        q = q.where(Document.status == status)
    if owner:
        q = q.where(Document.owner_id == owner)
    if hide_private:
        q = q.where(or_(Document.visibility != Visibility.private.value,
                        Document.owner_id == principal.user_id))
    with rt.sessions() as s:
        total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
        docs = list(s.scalars(q.order_by(Document.created_at.desc(), Document.id)
                              .limit(limit).offset(offset)))
    return docs, total
