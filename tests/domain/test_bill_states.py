"""A staged bill moves only along the arrows of the state diagram (``roger_economic.states``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from roger_economic import states
from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.states import BillState, TransitionRefused
from tests.faults.helpers import ROOT

ARROWS = [
    (BillState.NEW, BillState.PLANNED),  # judged
    (BillState.NEW, BillState.QUARANTINED),
    (BillState.NEW, BillState.WAITING),
    (BillState.NEW, BillState.WITHDRAW),
    (BillState.QUARANTINED, BillState.PLANNED),  # judged again: the cause is fixed
    (BillState.QUARANTINED, BillState.NEW),  # re-sync
    (BillState.PLANNED, BillState.BOOKED),  # settled by the load
    (BillState.PLANNED, BillState.REVIEW),
    (BillState.PLANNED, BillState.QUARANTINED),  # e-conomic refused an entry
    (BillState.WITHDRAW, BillState.WITHDRAWN),
    (BillState.BOOKED, BillState.NEW),  # a newer version staged
    (BillState.WITHDRAWN, BillState.NEW),
]
NOT_ARROWS = [
    (BillState.NEW, BillState.BOOKED),  # nothing is booked unjudged
    (BillState.QUARANTINED, BillState.BOOKED),
    (BillState.WAITING, BillState.PLANNED),  # a waiting bill is judged again only as a newer version
    (BillState.BOOKED, BillState.PLANNED),  # versions only move forward: a booked bill is not re-planned
    (BillState.BOOKED, BillState.WITHDRAWN),
    (BillState.WITHDRAWN, BillState.PLANNED),
    (BillState.REVIEW, BillState.BOOKED),
    (BillState.NEW, BillState.WITHDRAWN),  # withdrawn only once the load withdrew its entries
]


@pytest.mark.parametrize(("before", "after"), ARROWS)
def test_the_diagram_allows(before: BillState, after: BillState) -> None:
    assert states.allowed(before, after)
    states.check([before], after)


@pytest.mark.parametrize(("before", "after"), NOT_ARROWS)
def test_the_diagram_refuses(before: BillState, after: BillState) -> None:
    assert not states.allowed(before, after)
    with pytest.raises(TransitionRefused, match=f"from {before} to {after}"):
        states.check([before], after)


def test_every_state_leads_back_to_new_and_every_state_is_reached() -> None:
    """A newer version restarts any bill; and no state is drawn that nothing moves a bill into."""
    assert all(BillState.NEW in after for after in states.TRANSITIONS.values())
    reached = {s for after in states.TRANSITIONS.values() for s in after}
    assert reached == set(BillState) == set(states.TRANSITIONS)


def _bill(url: str, bill_id: str, state: BillState, version: int = 1) -> None:
    with session(url) as sess:
        sess.add(
            models.StagedBill(
                agreement_id="agr_0001",
                bill_id=bill_id,
                version=version,
                payload={"id": bill_id, "version": version},
                updated_at="",
                state=state,
                staged_at=datetime.now(UTC),
            )
        )


def _state(url: str, bill_id: str) -> str:
    with session(url) as sess:
        return sess.get_one(models.StagedBill, ("agr_0001", bill_id)).state


def test_move_writes_only_bills_in_the_states_it_may_leave(project_db):
    """A bill an overlapping run moved on (here: booked meanwhile) is left as it is."""
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    _bill(project_db, "bill_planned", BillState.PLANNED)
    _bill(project_db, "bill_booked", BillState.BOOKED)
    keys = [("agr_0001", "bill_planned"), ("agr_0001", "bill_booked")]
    with session(project_db) as sess:
        assert states.move(sess, keys, BillState.QUARANTINED, since=states.JUDGEABLE) == 1
    assert _state(project_db, "bill_planned") == "quarantined"
    assert _state(project_db, "bill_booked") == "booked"


def test_move_by_version_leaves_a_newer_version(project_db):
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    _bill(project_db, "bill_x", BillState.NEW, version=5)
    with session(project_db) as sess:
        assert states.move(sess, [("agr_0001", "bill_x", 4)], BillState.PLANNED, since=states.JUDGEABLE) == 0
    assert _state(project_db, "bill_x") == "new"


def test_a_refused_move_writes_nothing(project_db):
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    _bill(project_db, "bill_new", BillState.NEW)
    with pytest.raises(TransitionRefused), session(project_db) as sess:
        states.move(sess, [("agr_0001", "bill_new")], BillState.BOOKED, since=[BillState.NEW, BillState.PLANNED])
    assert _state(project_db, "bill_new") == "new"
