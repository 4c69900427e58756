"""One load per agreement at a time: a lease on the agreement's row (``lease_owner``, ``lease_until``).

A second run of the same agreement (a backfill overlapping the night) waits its turn; a lease whose
holder is gone (expired, or a process on this host that has ended) is taken over. A group's leases are
kept alive by its process (:class:`KeptLeases`), not renewed agreement by agreement.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, case, select, update
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models

log = logging.getLogger(__name__)

GROUP_LEASE_MINUTES = 10.0  # a group's leases, renewed while it loads (an agreement's own lease: 30)


def lease(sess: Session, agreement_id: str, owner: str, minutes: int = 30) -> bool:
    """Take the agreement for this loader (a second run of the same agreement waits its turn).

    A lease whose holder was a process on this host that no longer lives (killed mid-batch) is taken
    over at once instead of blocking the retry until it expires; recovery then sorts out its batch.
    """
    now = datetime.now(UTC)
    free = (
        (models.Agreement.lease_until.is_(None))
        | (models.Agreement.lease_until < now)
        | (models.Agreement.lease_owner == owner)
    )
    taken = cast(
        CursorResult,
        sess.execute(
            update(models.Agreement)
            .where(models.Agreement.id == agreement_id, free)
            .values(lease_owner=owner, lease_until=now + timedelta(minutes=minutes))
        ),
    )
    if taken.rowcount == 1:  # the usual case: one statement
        return True
    holder = sess.scalar(select(models.Agreement.lease_owner).where(models.Agreement.id == agreement_id))
    if holder is None or holder == owner or not _dead_local_owner(holder):
        return False  # held by a live run (or freed a moment ago): the caller waits its turn
    result = cast(
        CursorResult,
        sess.execute(
            update(models.Agreement)
            .where(models.Agreement.id == agreement_id, models.Agreement.lease_owner == holder)
            .values(lease_owner=owner, lease_until=now + timedelta(minutes=minutes))
        ),
    )
    if result.rowcount == 1:
        log.warning("agreement %s: took over the lease of %s, a process that is gone", agreement_id, holder)
    return result.rowcount == 1


def lease_all(sess: Session, agreement_ids: list[str], owner: str, minutes: float = GROUP_LEASE_MINUTES) -> set[str]:
    """Take the free leases of a group in one statement; returns the agreements this owner now holds.

    The others are held by another run (or by a dead one): the caller takes them one by one with
    :func:`lease`, which waits its turn or takes a dead holder's lease over. Shorter than an agreement's
    own lease, and kept alive while the group loads (:class:`KeptLeases`): a group whose process died on
    another host blocks its agreements for minutes, not half an hour.
    """
    now = datetime.now(UTC)
    agreement = models.Agreement
    free = (agreement.lease_until.is_(None)) | (agreement.lease_until < now) | (agreement.lease_owner == owner)
    return _set_leases(
        sess, agreement_ids, owner, free, {"lease_owner": owner, "lease_until": now + timedelta(minutes=minutes)}
    )


def _set_leases(sess: Session, agreement_ids: list[str], owner: str, where: Any, values: dict[str, Any]) -> set[str]:
    """``values`` set on the agreements among ``agreement_ids`` that match ``where``; returns those this owner
    holds afterwards (an UPDATE's row count cannot say which)."""
    agreement = models.Agreement
    held: set[str] = set()
    for ids in in_chunks(agreement_ids):
        sess.execute(
            update(agreement)
            .where(agreement.id.in_(ids), where)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        held |= set(sess.scalars(select(agreement.id).where(agreement.id.in_(ids), agreement.lease_owner == owner)))
    return held


def _extended(until: datetime) -> Any:
    """``lease_until`` moved to ``until`` unless it already lasts longer (a renewal never shortens a lease)."""
    column = models.Agreement.lease_until
    return case((column.is_(None) | (column < until), until), else_=column)


def renew_all(sess: Session, agreement_ids: list[str], owner: str, minutes: float) -> set[str]:
    """Extend the leases this owner still holds among ``agreement_ids``; returns those agreements."""
    until = datetime.now(UTC) + timedelta(minutes=minutes)
    return _set_leases(
        sess, agreement_ids, owner, models.Agreement.lease_owner == owner, {"lease_until": _extended(until)}
    )


def still_held(sess: Session, agreement_id: str, owner: str, minutes: float = GROUP_LEASE_MINUTES) -> bool:
    """In the transaction that marks a batch ``posting``: the lease is still this owner's and not run out,
    and now lasts at least ``minutes`` more (the POST fits in it; its record, written later, is guarded by the
    rows' own state: :func:`~roger_economic.posting.records.save_posted`).

    The guard behind every voucher POST: whatever happened to the renewals, a load that lost its lease
    (it ran out and another run took the agreement) marks and posts nothing more.
    """
    agreement = models.Agreement
    now = datetime.now(UTC)
    result = cast(
        CursorResult,
        sess.execute(
            update(agreement)
            .where(agreement.id == agreement_id, agreement.lease_owner == owner, agreement.lease_until > now)
            .values(lease_until=_extended(now + timedelta(minutes=minutes)))
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


class KeptLeases:
    """A group's leases, renewed for all its agreements at once every ``every`` seconds while its load runs.

    One statement a minute for the group instead of one per agreement as it starts. When the process dies
    its leases lapse within ``minutes`` (at once on this host); when the group's load ends, renewal stops
    and the lease of an agreement still running past its deadline lapses too. Either way no batch goes out
    on a lapsed lease: :func:`still_held` is checked as each batch is marked. :meth:`holds` is false for an
    agreement lost to another run, and for every agreement once renewals have failed for half a lease:
    such an agreement takes its own lease before it is loaded.
    """

    def __init__(
        self,
        session: Callable[[], Any],
        owner: str,
        held: set[str],
        taken_at: float,
        minutes: float = GROUP_LEASE_MINUTES,
        every: float = 60.0,
    ) -> None:
        """``taken_at``: ``time.monotonic()`` when ``held`` were leased (before the statement that took them)."""
        self._session, self._owner, self._minutes, self._every = session, owner, minutes, every
        self._held = set(held)
        self._added: set[str] = set()  # kept while a renewal was under way: not the renewal's to drop
        self._renewed = taken_at
        self._late_told = False
        self._lock = threading.Lock()
        # taken by the renewal and by the group's timed records (:class:`~roger_economic.posting.records.GroupRecords`):
        # both change many of the group's agreement rows in one statement while its loads run, and would deadlock
        self.turns = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-renewal", daemon=True)

    def __enter__(self) -> KeptLeases:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def holds(self, agreement_id: str) -> bool:
        with self._lock:
            fresh = time.monotonic() - self._renewed < self._minutes * 30  # half a lease, in seconds
            if not fresh and not self._late_told:
                self._late_told = True
                log.error(
                    "the group's leases were not renewed for %g minutes: each agreement takes its own",
                    self._minutes / 2,
                )
            return fresh and agreement_id in self._held

    def keep(self, agreement_id: str) -> None:
        """An agreement that took its own lease: kept alive with the others from now on."""
        with self._lock:
            self._held.add(agreement_id)
            self._added.add(agreement_id)

    def renew(self) -> None:
        with self._lock:
            ids = sorted(self._held)
            self._added.clear()
        began = time.monotonic()
        with self.turns, self._session() as sess:
            kept = renew_all(sess, ids, self._owner, self._minutes)
        with self._lock:  # given back by their loads, or lost to another run (unless taken again meanwhile)
            self._held -= set(ids) - kept - self._added
            self._renewed = began
            self._late_told = False

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.renew()
            except Exception as exc:  # the database away for a moment: tried again; :meth:`holds` says when it is late
                log.warning("renewing %d leases failed (%s); trying again", len(self._held), type(exc).__name__)


def _dead_local_owner(owner: str) -> bool:
    """``host:pid:run`` names a process on this host that has ended."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release(sess: Session, agreement_id: str, owner: str) -> None:
    sess.execute(
        update(models.Agreement)
        .where(models.Agreement.id == agreement_id, models.Agreement.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def release_all(sess: Session, agreement_ids: list[str], owner: str) -> None:
    """Give back every lease of the group this owner still holds (one a load could not give back itself)."""
    for ids in in_chunks(agreement_ids):
        sess.execute(
            update(models.Agreement)
            .where(models.Agreement.id.in_(ids), models.Agreement.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
