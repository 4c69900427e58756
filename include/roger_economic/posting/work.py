"""What a load starts from: the planned rows, stuck rows, withdrawn bills and pending documents of each
agreement, read for a whole group at once; and which agreements have anything to load at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from roger_economic.db import in_chunks, models
from roger_economic.states import Attachment, BillState, PostingStatus

# quarantine rules opened from e-conomic's answer at POST time (a refused invoice, a payment it holds back):
# released by the load that gets the entry in, never by validation (``quarantine.record`` leaves them open)
LOADER_RULES = frozenset({"economic_rejected", "invoice_rejected"})


@dataclass
class Planned:
    """A planned ledger row as the loader needs it, read (and its payload decoded) once per load."""

    id: int
    bill_id: str
    bill_version: int
    kind: str
    journal: int
    year: str
    idempotency_key: str
    payload_hash: str
    payload: dict[str, Any]


@dataclass
class Work:
    """What one agreement's load starts from (read for a whole group by :func:`read_work`)."""

    planned: list[Planned] = field(default_factory=list)
    stuck: bool = False  # a row is left ``posting``: recovery first
    withdrawn: set[str] = field(default_factory=set)  # bills withdrawn in Roger
    live: dict[tuple[str, str], models.Posting] = field(default_factory=dict)  # booked entries of those bills
    refused: set[str] = field(default_factory=set)  # bills with an open refusal by e-conomic (``LOADER_RULES``)
    # posted invoices whose PDF is still to go up: (row id, bill, journal, year, voucher number)
    to_attach: list[tuple[int, str, int, str, int | None]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Calls it will take, roughly: two per entry to post or document to attach (its PDF read from Roger,
        sent to e-conomic), one per withdrawal."""
        return 2 * len(self.planned) + 2 * len(self.to_attach) + len(self.withdrawn)


def read_work(sess: Session, agreement_ids: list[str]) -> dict[str, Work]:
    """What each agreement's load starts from, for a whole group in a few queries (not four per agreement).

    Only the booked entries of the bills at hand are read: an agreement's history grows every night.
    """
    posting, staged = models.Posting, models.StagedBill
    works = {aid: Work() for aid in agreement_ids}
    for ids in in_chunks(agreement_ids):
        for r in sess.execute(
            select(
                posting.agreement_id,
                posting.status,
                posting.id,
                posting.bill_id,
                posting.bill_version,
                posting.entry_kind,
                posting.journal_number,
                posting.accounting_year,
                posting.idempotency_key,
                posting.payload_hash,
                posting.payload,
            )
            .where(posting.agreement_id.in_(ids), posting.status.in_((PostingStatus.PLANNED, PostingStatus.POSTING)))
            .order_by(posting.id)
        ):
            if r[1] == PostingStatus.POSTING:
                works[r[0]].stuck = True
            else:
                works[r[0]].planned.append(Planned(*r[2:]))
        for aid, bill_id in sess.execute(
            select(staged.agreement_id, staged.bill_id).where(
                staged.agreement_id.in_(ids), staged.state == BillState.WITHDRAW
            )
        ):
            works[aid].withdrawn.add(bill_id)
        for aid, row_id, bill_id, journal, year, voucher in sess.execute(
            select(
                posting.agreement_id,
                posting.id,
                posting.bill_id,
                posting.journal_number,
                posting.accounting_year,
                posting.voucher_number,
            )
            .where(
                posting.agreement_id.in_(ids),
                posting.status == PostingStatus.POSTED,
                posting.attachment == Attachment.PENDING,
            )
            .order_by(posting.id)
        ):
            works[aid].to_attach.append((row_id, bill_id, journal, year, voucher))
        quarantine = models.Quarantine
        for aid, bill_id in sess.execute(
            select(quarantine.agreement_id, quarantine.bill_id)
            .where(
                quarantine.agreement_id.in_(ids),
                quarantine.rule.in_(sorted(LOADER_RULES)),
                quarantine.released_at.is_(None),
            )
            .distinct()
        ):
            works[aid].refused.add(bill_id)
    concerned = {
        (aid, bill) for aid, work in works.items() for bill in {p.bill_id for p in work.planned} | work.withdrawn
    }
    for bills in in_chunks(sorted({bill for _aid, bill in concerned})):
        for row in sess.scalars(
            select(posting)
            .options(defer(posting.payload))
            .where(
                posting.agreement_id.in_(agreement_ids),
                posting.bill_id.in_(bills),
                posting.status == PostingStatus.POSTED,
            )
        ):
            if (row.agreement_id, row.bill_id) in concerned:
                works[row.agreement_id].live[(row.bill_id, row.entry_kind)] = row
    return works


def agreements_with_work(sess: Session, agreement_ids: list[str]) -> set[str]:
    """The agreements a :class:`Loader` would do anything for (the steps of ``Loader.run``).

    A night's rerun, and most agreements on a quiet night, have nothing to load: they are passed by
    without a lease, clients or a query per step.
    """
    posting = models.Posting
    staged = models.StagedBill
    out: set[str] = set()
    for ids in in_chunks(agreement_ids):
        out |= set(
            sess.scalars(
                select(posting.agreement_id)
                .where(
                    posting.agreement_id.in_(ids),
                    posting.status.in_((PostingStatus.PLANNED, PostingStatus.POSTING))
                    | ((posting.status == PostingStatus.POSTED) & (posting.attachment == Attachment.PENDING)),
                )
                .distinct()
            )
        )
        out |= set(
            sess.scalars(
                select(staged.agreement_id)
                .where(staged.agreement_id.in_(ids), staged.state.in_((BillState.PLANNED, BillState.WITHDRAW)))
                .distinct()
            )
        )
    return out
