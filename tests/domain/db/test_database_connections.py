"""Pooled connections: a database restart between units of work does not fail the next one."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text

from roger_economic import db
from roger_economic.db import models


@pytest.mark.postgres
@pytest.mark.parametrize("project_db", ["postgres"], indirect=True)
def test_a_connection_killed_while_resting_is_replaced_on_next_use(project_db, monkeypatch):
    with db.session(project_db) as sess:
        pid = sess.execute(text("select pg_backend_pid()")).scalar_one()
    # the server drops the pooled connection (a restart, an idle timeout) while it rests in the pool
    admin = create_engine(project_db)
    with admin.connect() as other:
        other.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
        other.commit()
    admin.dispose()
    monkeypatch.setattr(db, "IDLE_BEFORE_PING", 0.0)  # it has rested long enough to be checked
    with db.session(project_db) as sess:
        assert sess.execute(text("select pg_backend_pid()")).scalar_one() != pid
        assert sess.scalars(select(models.Agreement)).all() == []


@pytest.mark.postgres
@pytest.mark.parametrize("project_db", ["postgres"], indirect=True)
def test_a_busy_step_keeps_its_connections_instead_of_opening_new_ones(project_db):
    """A load's threads, its lease keeper and the step itself hold a connection each at once: the pool keeps
    them all, so thousands of short transactions open no new server process after the first few."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import event

    from roger_economic.settings import environment

    opened = []
    event.listen(db.engine(project_db), "connect", lambda *_: opened.append(1))
    at_once = environment().load_threads + 2

    def transactions(i: int) -> None:
        for n in range(20):  # a call to e-conomic between two short transactions, as in a load
            with db.session(project_db) as sess:
                sess.execute(text("select pg_sleep(0.001)"))
            time.sleep(0.001 * ((i + n) % 5))

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        list(pool.map(transactions, range(at_once * 3)))
    assert len(opened) <= at_once
