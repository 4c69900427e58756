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
