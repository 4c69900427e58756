"""A group's finished loads leave their last records and leases to one writer: written within a second,
written again after a failed write, and a failed last write fails the load instead of passing in silence."""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.posting.records import GroupRecords, RecordsUnwritten, Unsaved
from tests.faults.helpers import ROOT

ME = f"{socket.gethostname()}:{os.getpid()}:run-me"


def _leased(url: str, *aids: str) -> None:
    with session(url) as sess:
        for aid in aids:
            row = sess.get_one(models.Agreement, aid)
            row.lease_owner, row.lease_until = ME, datetime.now(UTC) + timedelta(minutes=10)


def _owner(url: str, aid: str) -> str | None:
    with session(url) as sess:
        return sess.get_one(models.Agreement, aid).lease_owner


def _ids(url: str) -> list[str]:
    """The example file's agreements, loaded."""
    load_file(ROOT / "config" / "agreements.example.yaml", url=url)
    with session(url) as sess:
        return sorted(sess.scalars(models.Agreement.__table__.select().with_only_columns(models.Agreement.id)))


def _flaky(url: str, failures: int):
    """A session factory whose first ``failures`` units of work fail as if the database were away."""
    left = [failures]

    @contextmanager
    def factory():
        if left[0] > 0:
            left[0] -= 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        with session(url) as sess:
            yield sess

    return factory


def _until(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_finished_load_s_lease_is_given_back_within_a_second_while_the_group_goes_on(project_db):
    first, second = _ids(project_db)[:2]
    _leased(project_db, first, second)
    with GroupRecords(lambda: session(project_db), ME, threading.Lock(), every=0.2) as records:
        assert records.add(first, Unsaved())
        assert _until(lambda: _owner(project_db, first) is None, seconds=2)
        assert _owner(project_db, second) == ME  # not finished: still this group's
    assert not records.add(second, Unsaved())  # closed: that load writes its own records
    assert _owner(project_db, second) == ME


def test_a_failed_write_is_written_again_with_the_next(project_db):
    aid = _ids(project_db)[0]
    _leased(project_db, aid)
    with GroupRecords(_flaky(project_db, failures=2), ME, threading.Lock(), every=0.05) as records:
        records.add(aid, Unsaved())
        assert _until(lambda: _owner(project_db, aid) is None)


def test_a_failed_last_write_fails_the_load(project_db):
    aid = _ids(project_db)[0]
    _leased(project_db, aid)
    records = GroupRecords(_flaky(project_db, failures=1000), ME, threading.Lock(), every=60)
    with pytest.raises(RecordsUnwritten, match=aid) as failed, records:
        records.add(aid, Unsaved())
    assert failed.value.agreement_ids == [aid]
    assert _owner(project_db, aid) == ME  # lapses with the process; the next load looks its answers up
