
import pytest

from bunko.domain import Principal
from bunko.retrieve.acl import acl_filter
from bunko.retrieve.types import QueryFilters
from bunko.store.vectors import quote

# What each principal's filter admits is tested by running it in Milvus against
# bunko.access.can_read_document (tests/integration/test_vectors.py); here, that no value can
# escape the string literal it is quoted into.


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
