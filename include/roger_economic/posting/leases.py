"""One load per agreement at a time: a lease on the agreement's row (``lease_owner``, ``lease_until``).

A second run of the same agreement (a backfill overlapping the night) waits its turn; a lease whose
holder is gone (expired, or a process on this host that has ended) is taken over.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models

log = logging.getLogger(__name__)


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


def lease_all(sess: Session, agreement_ids: list[str], owner: str, minutes: int = 10) -> set[str]:
    """Take the free leases of a group in one statement; returns the agreements this owner now holds.

    The others are held by another run (or by a dead one): the caller takes them one by one with
    :func:`lease`, which waits its turn or takes a dead holder's lease over. Shorter than an agreement's
    own lease (each agreement renews its own for 30 minutes as it starts): a group whose process died on
    another host blocks its agreements for minutes, not half an hour.
    """
    now = datetime.now(UTC)
    agreement = models.Agreement
    free = (agreement.lease_until.is_(None)) | (agreement.lease_until < now) | (agreement.lease_owner == owner)
    held: set[str] = set()
    for ids in in_chunks(agreement_ids):
        sess.execute(
            update(agreement)
            .where(agreement.id.in_(ids), free)
            .values(lease_owner=owner, lease_until=now + timedelta(minutes=minutes))
            .execution_options(synchronize_session=False)
        )
        held |= set(sess.scalars(select(agreement.id).where(agreement.id.in_(ids), agreement.lease_owner == owner)))
    return held


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
