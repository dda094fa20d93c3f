from datetime import UTC, datetime

import pytest

from bunko.domain import Principal
from bunko.retrieve.acl import acl_filter
from bunko.retrieve.types import QueryFilters
from bunko.store.vectors import quote


def test_admin_sees_the_whole_collection():
    assert acl_filter(Principal("u1", "admin"), "c1", QueryFilters()) == 'collection_id == "c1"'


def test_user_sees_collection_documents_own_documents_and_role_documents():
    expr = acl_filter(Principal("u1", "user"), "c1", QueryFilters())
    assert expr == (
        'collection_id == "c1" and (visibility == "collection" or '
        '(visibility == "roles" and reader_roles like "% user %") or owner_id == "u1")'
    )


def test_power_user_sees_everything_not_private_plus_own():
    expr = acl_filter(Principal("p1", "power_user"), "c1", QueryFilters())
    assert expr == 'collection_id == "c1" and (visibility != "private" or owner_id == "p1")'


def test_empty_user_id_grants_no_ownership():
    expr = acl_filter(Principal("", "viewer"), "c1", QueryFilters())
    assert "owner_id" not in expr


def test_unknown_role_reads_only_its_own():
    assert acl_filter(Principal("u9", "root"), "c1") == 'collection_id == "c1" and (owner_id == "u9")'
    nothing = acl_filter(Principal("", "root"), "c1")
    assert 'chunk_id == "" and chunk_id != ""' in nothing


def test_filters_narrow_the_expression():
    f = QueryFilters(document_ids=["d1", "d2"], tags=["財務"],
                     date_from=datetime(2024, 1, 1, tzinfo=UTC), date_to=datetime(2024, 12, 31, tzinfo=UTC))
    expr = acl_filter(Principal("u1", "admin"), "c1", f)
    assert 'document_id in ["d1", "d2"]' in expr
    assert 'array_contains_any(tags, ["財務"])' in expr
    assert f"created_at >= {int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())}" in expr
    assert "created_at <= " in expr


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ('a"b', r'"a\"b"'),
        ("a\\b", r'"a\\b"'),
        ("a'b", r'"a\'b"'),
        ("a\nb", r'"a\nb"'),
        ("a\x00\x01b", '"ab"'),
        ('x" or visibility != "', r'"x\" or visibility != \""'),
        ('x\\" or 1==1 or "', r'"x\\\" or 1==1 or \""'),
    ],
)
def test_quote_escapes_so_a_value_cannot_leave_its_literal(value, literal):
    assert quote(value) == literal


def _literal_spans(expr: str) -> list[str]:
    """Split an expression into its string literals the way Milvus's lexer does."""
    spans, i = [], 0
    while i < len(expr):
        if expr[i] == '"':
            j = i + 1
            while expr[j] != '"':
                j += 2 if expr[j] == "\\" else 1
            spans.append(expr[i : j + 1])
            i = j + 1
        else:
            i += 1
    return spans


def test_hostile_values_stay_inside_their_literals():
    hostile = 'u1" or owner_id != "'
    expr = acl_filter(Principal(hostile, "user"), 'c1" or "1"=="1', QueryFilters(tags=['t"]) or (1==1']))
    # Outside the literals, the expression has exactly the structure of a benign one.
    benign = acl_filter(Principal("x", "user"), "y", QueryFilters(tags=["z"]))
    skeleton = expr
    for lit in _literal_spans(expr):
        skeleton = skeleton.replace(lit, "L", 1)
    benign_skeleton = benign
    for lit in _literal_spans(benign):
        benign_skeleton = benign_skeleton.replace(lit, "L", 1)
    assert skeleton == benign_skeleton
    assert hostile.replace('"', '\\"') in expr
