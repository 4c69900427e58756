"""An agreement is loaded by one run at a time: its lease is taken, refused, taken over and given back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.posting.leases import KeptLeases, lease, lease_all, release, release_all
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


def _until(url: str, aid: str = AID) -> datetime | None:
    with session(url) as sess:
        until = sess.get_one(models.Agreement, aid).lease_until
    return until if until is None or until.tzinfo else until.replace(tzinfo=UTC)


def test_a_groups_leases_stay_alive_while_it_loads_and_lapse_for_those_given_back_or_lost(project_db):
    """A group's process renews all its leases at once: a long agreement never outlives its lease, an
    agreement given back is not taken again, and one another run took over is no longer held."""
    ids = _setup(project_db)[:3]
    taken_at = time.monotonic()
    with session(project_db) as sess:
        assert lease_all(sess, ids, ME, minutes=1) == set(ids)
    first = _until(project_db, ids[0])
    with session(project_db) as sess:
        release(sess, ids[1], ME)  # its load ended
    _held_by(project_db, "another-host:1:run-other", aid=ids[2])  # lost (its lease had lapsed) to another run
    with KeptLeases(lambda: session(project_db), ME, set(ids), taken_at, minutes=1, every=0.05) as leases:
        deadline = time.monotonic() + 10
        while leases.holds(ids[2]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leases.holds(ids[0])
        assert not leases.holds(ids[1]) and not leases.holds(ids[2])
    assert first is not None and _until(project_db, ids[0]) > first  # renewed, still this run's
    assert _owner(project_db, ids[0]) == ME
    assert _owner(project_db, ids[1]) is None  # given back: not taken again
    assert _owner(project_db, ids[2]) == "another-host:1:run-other"


def test_a_renewal_never_shortens_a_lease(project_db):
    """An agreement that took its own 30-minute lease keeps it when the group's 10-minute renewal comes."""
    _setup(project_db)
    with session(project_db) as sess:
        assert lease(sess, AID, ME, minutes=30)
    own = _until(project_db)
    KeptLeases(lambda: session(project_db), ME, {AID}, time.monotonic(), minutes=10).renew()
    assert _until(project_db) == own


def test_when_renewals_fail_for_half_a_lease_no_agreement_counts_as_held(project_db):
    """The database away: an agreement about to be loaded takes its own lease instead of trusting one
    that may have lapsed."""
    ids = _setup(project_db)[:1]

    def database_away():
        raise ConnectionError("the database is away")

    minutes = 0.005  # a 0.3 s lease: held for 0.15 s after it was taken, then no longer
    with KeptLeases(database_away, ME, set(ids), time.monotonic(), minutes=minutes, every=0.02) as leases:
        assert leases.holds(ids[0])
        time.sleep(0.3)
        assert not leases.holds(ids[0])
