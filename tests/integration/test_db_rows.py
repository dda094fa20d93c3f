"""Rows the database must take however they arrive: text PostgreSQL would refuse, and two processes
creating the same collection at once. Both run on SQLite and on PostgreSQL (``db_url``)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bunko.collections import create_collection, ensure_default_collection
from bunko.errors import Conflict
from bunko.store.db import Collection, QueryLog, session_scope


def test_a_nul_in_a_question_or_answer_is_logged_not_lost(db_url: str) -> None:
    # PostgreSQL refuses NUL in text; a random-weight LLM emitted one in make e2e.
    with session_scope(db_url) as s:
        s.add(QueryLog(id="q1", query="売上\x00高", answer="答え\x00です", sources=[]))
    with session_scope(db_url) as s:
        row = s.get(QueryLog, "q1")
        assert row is not None
        assert (row.query, row.answer) == ("売上\ufffd高", "答え\ufffdです")


def test_a_collection_created_concurrently_is_a_conflict_and_the_default_is_shared(
    db_url: str, runtime_factory: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime_factory(database_url=db_url)
    ensure_vector_collection = rt.vectors.ensure_collection

    def other_process_wins(name: str, *args: Any, **kwargs: Any) -> None:
        # Between create_collection's name check and its insert, another api worker inserts the row.
        ensure_vector_collection(name, *args, **kwargs)
        with session_scope(db_url) as s:
            s.add(Collection(name="default", vector_collection=name, embedding_model="other",
                             embedding_dim=rt.embedder.dim))

    monkeypatch.setattr(rt.vectors, "ensure_collection", other_process_wins)
    with pytest.raises(Conflict, match="already exists"):
        create_collection(rt, "default")
    monkeypatch.undo()

    # ensure_default_collection, which each api worker runs at start, returns the winner's row.
    monkeypatch.setattr(rt.vectors, "ensure_collection", other_process_wins)
    with session_scope(db_url) as s:
        s.query(Collection).delete()
    coll = ensure_default_collection(rt)
    with session_scope(db_url) as s:
        rows = s.scalars(select(Collection).where(Collection.name == "default")).all()
    assert [r.id for r in rows] == [coll.id] and coll.embedding_model == "other"
