"""The access filter that goes inside every vector search.

A Milvus boolean expression, built only from an authenticated :class:`Principal` and validated
filters, with every value escaped by :func:`bunko.store.vectors.quote`, so no user-supplied string
can change the expression's structure. Rules (document-level ACLs, ARCHITECTURE.md §9):

* admin: every document of the collection;
* power user: every document that is not private, and their own;
* an unknown role: only its own documents;
* user / viewer: documents visible to the whole collection, their own, and documents shared with
  their role (``visibility == "roles"`` and the role in ``allowed_roles``).
"""

from __future__ import annotations

from bunko.domain import Principal, Role, Visibility
from bunko.retrieve.types import QueryFilters
from bunko.store.vectors import quote

# Roles whose names are plain words, safe inside a LIKE pattern.
_KNOWN_ROLES = frozenset(r.value for r in Role if r.value.isalpha())


def _visibility_clause(principal: Principal) -> str | None:
    """None means "no restriction" (admin). Must agree with ``bunko.access.can_read_document``."""
    if principal.role == Role.admin.value:
        return None
    clauses: list[str] = []
    if principal.role == Role.power_user.value:
        clauses.append(f"visibility != {quote(Visibility.private.value)}")
    elif principal.role in _KNOWN_ROLES:
        clauses.append(f"visibility == {quote(Visibility.collection.value)}")
        # reader_roles is allowed_roles as " user viewer " (see bunko.store.vectors): `like` on it
        # is two orders of magnitude faster than array_contains in Milvus Lite. Known roles only,
        # so the pattern holds no LIKE wildcard.
        clauses.append(
            f"(visibility == {quote(Visibility.roles.value)} "
            f"and reader_roles like {quote(f'% {principal.role} %')})"
        )
    # An empty id would match every document whose owner is unset; it grants nothing.
    if principal.user_id:
        clauses.append(f"owner_id == {quote(principal.user_id)}")
    if not clauses:  # an unknown role and no identity: nothing is readable
        return "(chunk_id == \"\" and chunk_id != \"\")"
    return "(" + " or ".join(clauses) + ")"


def acl_filter(principal: Principal, collection_id: str, filters: QueryFilters | None = None) -> str:
    """The Milvus filter expression for what ``principal`` may read in ``collection_id``,
    narrowed by ``filters`` (document ids, tags, creation date range)."""
    parts = [f"collection_id == {quote(collection_id)}"]
    visibility = _visibility_clause(principal)
    if visibility is not None:
        parts.append(visibility)
    if filters is not None:
        if filters.document_ids:
            ids = ", ".join(quote(d) for d in filters.document_ids)
            parts.append(f"document_id in [{ids}]")
        if filters.tags:
            tags = ", ".join(quote(t) for t in filters.tags)
            parts.append(f"array_contains_any(tags, [{tags}])")
        if filters.date_from is not None:
            parts.append(f"created_at >= {int(filters.date_from.timestamp())}")
        if filters.date_to is not None:
            parts.append(f"created_at <= {int(filters.date_to.timestamp())}")
    return " and ".join(parts)
