"""An agreement is loaded by one run at a time: its lease is taken, refused, taken over and given back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.posting.leases import lease, lease_all, release, release_all
from tests.faults.helpers import ROOT

AID = "agr_0001"
ME = f"{socket.gethostname()}:{os.getpid()}:run-me"


def _setup(url: str) -> list[str]:
    load_file(ROOT / "config" / "agreements.example.yaml", url=url)
    with session(url) as sess:
        return sorted(sess.scalars(models.Agreement.__table__.select().with_only_columns(models.Agreement.id)))


def _held_by(url: str, owner: str | None, minutes: float = 30, aid: str = AID) -> None:
    with session(url) as sess:
        row = sess.get_one(models.Agreement, aid)
        row.lease_owner = owner
        row.lease_until = None if owner is None else datetime.now(UTC) + timedelta(minutes=minutes)


def _owner(url: str, aid: str = AID) -> str | None:
    with session(url) as sess:
        return sess.get_one(models.Agreement, aid).lease_owner


def _ended_pid() -> int:
    """The id of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_free_lease_is_taken_and_taken_again_by_its_owner(project_db):
    _setup(project_db)
    with session(project_db) as sess:
        assert lease(sess, AID, ME)
    assert _owner(project_db) == ME
    with session(project_db) as sess:
        assert lease(sess, AID, ME)  # renewed, not refused


def test_a_lease_held_by_a_live_run_is_refused(project_db):
    _setup(project_db)
    for live in (f"another-host:{os.getpid()}:run-other", f"{socket.gethostname()}:{os.getpid()}:run-other"):
        _held_by(project_db, live)
        with session(project_db) as sess:
            assert not lease(sess, AID, ME)
        assert _owner(project_db) == live
        with session(project_db) as sess:
            assert lease_all(sess, [AID], ME) == set()
        assert _owner(project_db) == live


def test_the_lease_of_a_process_that_ended_on_this_host_is_taken_over_at_once(project_db):
    _setup(project_db)
    dead = f"{socket.gethostname()}:{_ended_pid()}:run-killed"
    _held_by(project_db, dead)
    with session(project_db) as sess:
        assert lease(sess, AID, ME)
    assert _owner(project_db) == ME


def test_an_expired_lease_is_taken_over_from_any_host(project_db):
    ids = _setup(project_db)
    other = ids[1] if len(ids) > 1 else AID
    _held_by(project_db, "another-host:1:run-old", minutes=-1)
    _held_by(project_db, "another-host:1:run-old", minutes=-1, aid=other)
    with session(project_db) as sess:
        assert lease(sess, AID, ME)
    assert _owner(project_db) == ME
    with session(project_db) as sess:
        assert lease_all(sess, [other], ME) == {other}


def test_release_gives_back_only_the_owners_lease(project_db):
    ids = _setup(project_db)
    with session(project_db) as sess:
        assert lease_all(sess, ids, ME) == set(ids)
    with session(project_db) as sess:
        release(sess, AID, "another-host:1:run-other")  # not its lease: nothing changes
    assert _owner(project_db) == ME
    with session(project_db) as sess:
        release(sess, AID, ME)
    assert _owner(project_db) is None
    with session(project_db) as sess:
        release_all(sess, ids, ME)
    assert all(_owner(project_db, aid) is None for aid in ids)
    with session(project_db) as sess:
        assert lease(sess, AID, "another-host:2:run-next")  # free again for the next run
