"""``Runtime.close`` gives back what a process opened: the api's shutdown and every test's runtime
call it, so a long-lived process that restarts its runtime does not pile up connections."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bunko.store.db import migrate
from tests.support.databases import create_pg_database, drop_pg_database, pg_admin_conninfo


def _connections(database: str) -> int:
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def own_pg_url():
    """A database of this test's own: nobody else's pool counts in pg_stat_activity."""
    name, url = create_pg_database("bunko_close")
    yield url
    drop_pg_database(name, url)


@pytest.mark.postgres
def test_close_gives_back_the_database_connections_and_the_runtime_opens_again(runtime_factory, own_pg_url):
    migrate(own_pg_url)
    rt = runtime_factory(database_url=own_pg_url)
    for _ in range(3):
        with rt.sessions() as s:
            s.execute(text("SELECT 1"))
    database = make_url(own_pg_url).database
    assert database and _connections(database) >= 1  # the pool keeps one open
    rt.close()
    assert _connections(database) == 0
    with rt.sessions() as s:
        assert s.execute(text("SELECT 1")).scalar() == 1
    rt.close()  # twice is fine
    assert _connections(database) == 0


def test_close_drops_the_opened_parts_so_that_a_later_use_opens_them_anew(runtime_factory):
    rt = runtime_factory()
    cache, objects = rt.cache, rt.objects
    cache.set("k", b"v", 60)
    rt.close()
    assert "cache" not in rt.__dict__ and "objects" not in rt.__dict__
    assert rt.cache is not cache and rt.objects is not objects
