"""Where a bill, a ledger row and an agreement's step stand: the strings the database holds, as enums.

A staged bill's life (``staged_bills.state``); every write of it goes through :func:`move`, which
allows only these arrows::

      staged: a bill's first version, or a newer version of a bill in any state
                                  │
                                  ▼
                                 new ◄──────── re-sync (UI) ──────── quarantined
                                  │
                                  │ judged (validate); quarantined and planned
                                  │ bills are judged again into any of these four
         ┌──────────────┬─────────┴──────┬──────────────────┐
         ▼              ▼                ▼                  ▼
      waiting      quarantined ◄──── planned             withdraw
                                 load:  │   │                 │ load: its drafts deleted
                         e-conomic      │   │                 ▼
                         refused an     │   │             withdrawn
                         entry          ▼   ▼
                                   booked   review (a booked entry's bill changed)

(``planned`` is settled by the load: ``booked`` once none of its entries waits, ``review`` when a
booked entry must be corrected by hand, ``quarantined`` when e-conomic refused an entry.)

A ledger row (``postings.status``) is a :class:`PostingStatus`, its document a :class:`Attachment`;
one agreement's result of one step (``run_reports.outcome``, ``agreement_status.last_outcome``) an
:class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, tuple_, update
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models


class BillState(StrEnum):
    """Where a staged bill stands (``staged_bills.state``)."""

    NEW = "new"  # staged, not judged yet
    WAITING = "waiting"  # not ready to book in Roger (being analysed, awaiting approval, pending)
    QUARANTINED = "quarantined"  # a rule stops it (its open quarantine records say which)
    PLANNED = "planned"  # its entries are in the ledger, to be posted
    BOOKED = "booked"  # every entry is in e-conomic
    WITHDRAW = "withdraw"  # deleted or a duplicate in Roger: its entries are still to be withdrawn
    WITHDRAWN = "withdrawn"  # nothing of it is booked any more
    REVIEW = "review"  # a booked entry's bill changed in Roger: corrected by hand


class PostingStatus(StrEnum):
    """Where a ledger row stands (``postings.status``)."""

    PLANNED = "planned"  # to be posted
    POSTING = "posting"  # marked before its POST: a crash or a lost answer leaves it here (recovery)
    POSTED = "posted"  # in e-conomic (a draft, or booked by the accountant since)
    SUPERSEDED = "superseded"  # a newer version of the bill took its place (its draft deleted, if any)
    WITHDRAWN = "withdrawn"  # its bill was deleted in Roger (its draft deleted, if any)
    REVIEW = "review"  # waits for a booked entry to be corrected by hand
    REJECTED = "rejected"  # e-conomic refused it
    HELD = "held"  # a payment held back because e-conomic refused its invoice


class Attachment(StrEnum):
    """Where a ledger row's document stands (``postings.attachment``)."""

    NONE = "none"  # nothing to attach
    PENDING = "pending"  # to be uploaded
    ATTACHED = "attached"
    SKIPPED = "skipped"  # the e-conomic agreement lacks the scanning add-on
    TOO_LARGE = "too_large"  # over e-conomic's limit per upload: a review item says to attach it by hand


class Outcome(StrEnum):
    """One agreement's result of one step (``run_reports.outcome``) or run (``agreement_status.last_outcome``)."""

    OK = "ok"
    INCOMPLETE = "incomplete"  # records that could not be staged are named; the rest went on
    STOPPED = "stopped"  # its setup or tokens stop it (the reason says which)
    FAILED = "failed"
    UNKNOWN = "unknown"  # the run report could not be built (no database)


EVERY_STATE = tuple(BillState)  # a newer version staged restarts a bill from any of them
# the states validation judges (again): a bill in another state waits for a newer version (or the load)
JUDGEABLE = (BillState.NEW, BillState.QUARANTINED, BillState.PLANNED)
_JUDGED = frozenset({BillState.WAITING, BillState.QUARANTINED, BillState.PLANNED, BillState.WITHDRAW})

# from → the states a bill may move to; every state may move to ``new`` (a newer version staged)
TRANSITIONS: dict[BillState, frozenset[BillState]] = {
    BillState.NEW: _JUDGED | {BillState.NEW},
    BillState.QUARANTINED: _JUDGED | {BillState.NEW},
    BillState.PLANNED: _JUDGED | {BillState.NEW, BillState.BOOKED, BillState.REVIEW},
    BillState.WAITING: frozenset({BillState.NEW}),
    BillState.WITHDRAW: frozenset({BillState.NEW, BillState.WITHDRAWN}),
    BillState.WITHDRAWN: frozenset({BillState.NEW}),
    BillState.BOOKED: frozenset({BillState.NEW}),
    BillState.REVIEW: frozenset({BillState.NEW}),
}


class TransitionRefused(ValueError):
    """A bill state change the diagram does not draw (a programming error, never data)."""


def allowed(before: BillState | str, after: BillState | str) -> bool:
    return BillState(after) in TRANSITIONS[BillState(before)]


def check(before: Iterable[BillState | str], after: BillState | str) -> None:
    """Raise :class:`TransitionRefused` unless every ``before → after`` is an arrow of the diagram."""
    refused = sorted(str(b) for b in before if not allowed(b, after))
    if refused:
        raise TransitionRefused(f"a bill may not move from {', '.join(refused)} to {after}")


def move(
    sess: Session,
    bills: Iterable[tuple[str, str] | tuple[str, str, int]],
    to: BillState,
    *,
    since: Collection[BillState],
) -> int:
    """Move staged bills that are in one of the states ``since`` to ``to``; returns how many moved.

    ``bills``: (agreement, bill) keys, or (agreement, bill, version) keys when only the version that was
    judged may move (a newer version staged meanwhile stays ``new``). A bill in another state is left as
    it is: an overlapping run moved it on. Raises :class:`TransitionRefused` before writing anything
    when some ``since → to`` is not an arrow of the diagram.
    """
    check(since, to)
    keys = list(bills)
    if not keys:
        return 0
    staged = models.StagedBill
    columns: list[Any] = [staged.agreement_id, staged.bill_id]
    if len(keys[0]) == 3:
        columns.append(staged.version)
    moved = 0
    for chunk in in_chunks(keys):  # one UPDATE per 500 bills, across a group's agreements
        result = sess.execute(
            update(staged)
            .where(tuple_(*columns).in_(chunk), staged.state.in_([str(s) for s in since]))
            .values(state=str(to))
            .execution_options(synchronize_session=False)
        )
        moved += cast(CursorResult, result).rowcount
    return moved
