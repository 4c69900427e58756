"""Step 4, load: what is planned posted into e-conomic, agreement by agreement, a few at a time.

The posting itself (recovery, withdrawals, suppliers, vouchers, documents) is :mod:`roger_economic.posting`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from roger_economic import setup_rules
from roger_economic.context import AgreementContext, load_contexts
from roger_economic.credentials import Endpoints
from roger_economic.db import session
from roger_economic.errors import AgreementStopped, AuthError, IntegrationError, database_error
from roger_economic.http import RetryPolicy
from roger_economic.settings import environment
from roger_economic.states import Outcome
from roger_economic.steps.fanout import LOAD_THREADS, AgreementsFailed, clients, each

if TYPE_CHECKING:
    from roger_economic.posting.suppliers import LookUp
    from roger_economic.posting.work import Work

log = logging.getLogger(__name__)

# the master data a load reads: what can stop an agreement, and ``self`` (the scanning add-on, the base currency
# of a supplier it creates); never the chart of suppliers or the calendar, which validation judged bills by
LOAD_KINDS = setup_rules.STOP_KINDS
LEASE_WAIT = environment().lease_wait
LEASE_RENEW_EVERY = 60.0  # seconds between renewals of a group's leases (each lasts 10 minutes)
READ_AGAIN_AFTER = 600.0  # seconds: an agreement of a long group reads what it starts from afresh


def _wait_for_lease(aid: str, owner: str) -> None:
    """Overlapping runs (a backfill) take turns per agreement instead of failing at once."""
    from roger_economic.posting.leases import lease

    waited = 0.0
    while True:
        with session() as sess:
            if lease(sess, aid, owner):
                return
        if waited >= LEASE_WAIT:
            raise IntegrationError(f"agreement {aid} is being loaded by another run; try again later")
        time.sleep(2.0)
        waited += 2.0


def _give_back(agreement_ids: list[str], owner: str) -> None:
    """A failing load's leases given back at once, if the database lets it; else they lapse (the failure that
    got here is the one raised, not this one's)."""
    from roger_economic.posting.leases import release_all

    try:
        with session() as sess:
            release_all(sess, agreement_ids, owner)
    except Exception as exc:
        log.warning("leases of %d agreements not given back: %s", len(agreement_ids), database_error(exc))


def _mark_suppliers(contexts: dict[str, AgreementContext], works: dict[str, Work]) -> dict[str, LookUp]:
    """The vendors the group's loads will create, marked ``creating`` in one transaction for all of them
    (:func:`~roger_economic.posting.suppliers.mark_creating`) instead of one per agreement at its turn: those of
    the newest planned version of each entry, of agreements that need no recovery first. If the write fails
    (the database away for a moment), each load marks its own."""
    from roger_economic.posting.loader import newest_only
    from roger_economic.posting.suppliers import mark_creating, unknown_vendors

    wanted = {
        aid: (contexts[aid], vendors)
        for aid, work in works.items()
        if not work.stuck and (vendors := unknown_vendors(contexts[aid], newest_only(work.planned, work.live)[0]))
    }
    if not wanted:
        return {}
    try:
        with session() as sess:
            return mark_creating(sess, wanted)
    except SQLAlchemyError as exc:
        log.warning("suppliers of %d agreements not marked together: %s", len(wanted), database_error(exc))
        return {}


def load(
    agreement_ids: list[str],
    endpoints: Endpoints,
    run_id: str,
    policy: RetryPolicy | None = None,
    on_call: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Post what is planned, agreement by agreement (a few at a time); fail at the end, naming failures.

    The group's leases (taken, kept alive, given back), what each agreement starts from, each load's last
    records (every second: :class:`~roger_economic.posting.records.GroupRecords`) and at the end
    the bill states, are each read or written for many agreements at once; per agreement remain its
    batches and uploads.
    """
    from roger_economic.posting.leases import KeptLeases, lease_all, release_all
    from roger_economic.posting.loader import Loader
    from roger_economic.posting.records import GroupRecords, RecordsUnwritten
    from roger_economic.posting.settle import settle_bill_states
    from roger_economic.posting.suppliers import Marks
    from roger_economic.posting.work import agreements_with_work, read_work

    owner = f"{socket.gethostname()}:{os.getpid()}:{run_id}"
    taken_at = time.monotonic()
    with session() as sess:
        contexts = load_contexts(sess, agreement_ids, LOAD_KINDS)
        busy = agreements_with_work(sess, agreement_ids)
        ready = [a for a in agreement_ids if a in busy and a in contexts and not contexts[a].stop_reason()]
        held = lease_all(sess, ready, owner)
    try:
        with session() as sess:  # leases committed first: a read does not hold SQLite's write lock
            works = read_work(sess, sorted(held))
        marked = _mark_suppliers(contexts, works)
    except BaseException:  # the task was stopped, the database away: the leases are given back
        _give_back(sorted(held), owner)
        raise
    read_at = time.monotonic()
    leases = KeptLeases(session, owner, held, taken_at, every=LEASE_RENEW_EVERY)
    last_records = GroupRecords(session, owner, leases.turns)  # each load's last records and lease, many at once
    taken = set(held)  # every agreement this run took a lease of (the group's, and those it waited for)

    def work(aid: str) -> dict[str, Any]:
        ctx = contexts[aid]
        reason = ctx.stop_reason()
        if reason:
            raise AgreementStopped(aid, reason)
        if aid not in busy:
            return {}
        start, look_up = works.pop(aid, None), marked.pop(aid, None)
        marks = None if look_up is None else Marks(look_up, lease_kept=lambda: leases.holds(aid))
        if start is None or not leases.holds(aid):  # held by another run at the start (or lost since, or the
            start = marks = None  # renewals are late): its own lease, its own read, and kept alive from then on
            _wait_for_lease(aid, owner)
            taken.add(aid)
            leases.keep(aid)
        elif time.monotonic() - read_at > READ_AGAIN_AFTER:  # a long group: what was read at its start
            start = marks = None  # (withdrawals, booked entries, suppliers' links) is read again
        economic, roger = clients(ctx.settings, endpoints, policy, on_call)
        try:
            loader = Loader(
                session,
                ctx,
                economic,
                roger,
                run_id,
                work=start,
                owner=owner,
                group=last_records,
                marks=marks,
            )
            return dict(loader.run().counts)
        except AuthError as exc:
            raise AgreementStopped(aid, f"token rejected: {exc}") from None
        finally:
            economic.close()
            roger.close()

    # the largest agreements first: a 400-bill client started last would keep the group waiting alone at its
    # end while the other threads idle (longest first is the simple schedule that keeps the threads busy)
    largest_first = sorted(agreement_ids, key=lambda a: -works[a].size if a in works else 0)
    try:
        with leases, last_records:  # the records are written before the leases stop being renewed
            results = each(largest_first, work, run_id, "load", threads=LOAD_THREADS)
    except RecordsUnwritten:  # the database is away: no lease is given back (one past its deadline may still post)
        raise
    except BaseException:  # the task was stopped: this run's leases are given back
        _give_back(sorted(taken), owner)
        raise
    # an agreement past its deadline may still be posting in its thread: its lease stays (it ends with
    # this process, whose leases the next load takes over), and its bills are settled by that next load
    done = sorted(taken - {a for a, r in results.items() if r.get("timed_out")})
    with session() as sess:  # each load's lease was given back with its last records; this is for any that was not
        settle_bill_states(sess, done)
        release_all(sess, done, owner)
    failed = {a: r["message"] for a, r in results.items() if r["outcome"] == Outcome.FAILED}
    if failed:
        raise AgreementsFailed(failed)
    return {aid: results[aid] for aid in agreement_ids}  # in the group's order, for its table
