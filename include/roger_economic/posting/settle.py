"""After a group's load: each planned bill's state settled from its ledger rows (booked, review or
quarantined), for the whole group at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from roger_economic import states
from roger_economic.db import in_chunks, models
from roger_economic.states import BillState, PostingStatus


def settle_bill_states(sess: Session, agreement_ids: list[str]) -> None:
    """A planned bill is booked once none of its entries waits any more (for a whole group at once)."""
    posting, staged = models.Posting, models.StagedBill
    waiting: set[tuple[str, str]] = set()
    review: set[tuple[str, str]] = set()
    refused: set[tuple[str, str]] = set()  # an entry e-conomic refused, or a payment its refused invoice holds
    planned: set[tuple[str, str]] = set()
    for ids in in_chunks(agreement_ids):
        for aid, bill_id, status in sess.execute(
            select(posting.agreement_id, posting.bill_id, posting.status).where(
                posting.agreement_id.in_(ids),
                posting.status.in_(
                    (
                        PostingStatus.PLANNED,
                        PostingStatus.POSTING,
                        PostingStatus.REVIEW,
                        PostingStatus.REJECTED,
                        PostingStatus.HELD,
                    )
                ),
            )
        ):
            sets = {PostingStatus.REVIEW: review, PostingStatus.REJECTED: refused, PostingStatus.HELD: refused}
            sets.get(PostingStatus(status), waiting).add((aid, bill_id))
        planned |= {
            (aid, bill)
            for aid, bill in sess.execute(
                select(staged.agreement_id, staged.bill_id).where(
                    staged.agreement_id.in_(ids), staged.state == BillState.PLANNED
                )
            )
        }
    for state, bills in (
        (BillState.REVIEW, planned & review),
        (BillState.QUARANTINED, (planned & refused) - review - waiting),
        (BillState.BOOKED, planned - review - waiting - refused),
    ):  # only bills still planned: not one an overlapping run moved on
        states.move(sess, sorted(bills), state, since=[BillState.PLANNED])
