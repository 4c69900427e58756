"""Quarantine that releases itself, on the real project database.

Each run re-judges the open bills: a failing rule opens a record with the offending value, a rule that
still fails keeps its record, a rule that now passes is released with the reason, and the bill's staged
state follows the version that was judged.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from roger_economic import quarantine
from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.model import BillOutcome, Finding
from tests.integration.helpers import ROOT

AGR, BILL = "agr_0001", "bill_q"


@pytest.fixture()
def db(project_db: str) -> str:
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    _stage(project_db, AGR, BILL, 1)
    _stage(project_db, "agr_0002", BILL, 1)  # the same bill id at another agreement
    return project_db


def _stage(url: str, agreement: str, bill: str, version: int) -> None:
    with session(url) as sess:
        row = sess.get(models.StagedBill, (agreement, bill)) or models.StagedBill(
            agreement_id=agreement, bill_id=bill, staged_at=datetime.now(UTC), updated_at=""
        )
        row.version, row.payload, row.state = version, {"id": bill, "version": version}, "new"
        sess.add(row)


def _finding(rule: str = "vat_mismatch", value: str = "25.00", entry: str = "invoice", severity: str = "stop"):
    return Finding(AGR, BILL, 1, rule, severity, entry, value, f"{rule}: {value}")


def _record(url: str, state: str, findings: list[Finding], run: str, version: int = 1, agreement: str = AGR):
    with session(url) as sess:
        return quarantine.record(sess, [BillOutcome(agreement, BILL, version, state, findings)], run)


def _records(url: str, agreement: str = AGR) -> list[models.Quarantine]:
    with session(url) as sess:
        rows = sess.scalars(
            select(models.Quarantine).where(models.Quarantine.agreement_id == agreement).order_by(models.Quarantine.id)
        ).all()
        sess.expunge_all()
        return list(rows)


def _state(url: str, agreement: str = AGR) -> str:
    with session(url) as sess:
        return sess.get_one(models.StagedBill, (agreement, BILL)).state


def test_a_failing_rule_opens_a_record_with_the_offending_value(db):
    assert _record(db, "quarantined", [_finding(value="25.00")], "run-1") == {"opened": 1, "released": 0}
    [row] = _records(db)
    assert (row.rule, row.entry_kind, row.severity, row.value, row.bill_version) == (
        "vat_mismatch",
        "invoice",
        "stop",
        "25.00",
        1,
    )
    assert row.released_at is None and row.run_id == "run-1"
    assert _state(db) == "quarantined"
    assert _state(db, "agr_0002") == "new"  # the same bill id elsewhere is another bill


def test_a_rule_that_still_fails_keeps_its_one_record_with_the_latest_value(db):
    _record(db, "quarantined", [_finding(value="25.00")], "run-1")
    assert _record(db, "quarantined", [_finding(value="24.99")], "run-2") == {"opened": 0, "released": 0}
    [row] = _records(db)
    assert row.value == "24.99" and row.released_at is None and row.first_seen <= row.last_seen


def test_a_rule_that_passes_is_released_with_its_reason_and_the_bill_goes_on(db):
    _record(db, "quarantined", [_finding()], "run-1")
    assert _record(db, "planned", [], "run-2") == {"opened": 0, "released": 1}
    [row] = _records(db)
    assert row.released_at is not None
    assert row.release_reason == "rule vat_mismatch passes since run run-2"
    assert _state(db) == "planned"


def test_records_match_on_rule_and_entry_not_on_the_rule_alone(db):
    """The payment's finding still fails, the invoice's passes: only the invoice's record is released."""
    _record(db, "quarantined", [_finding(entry="invoice"), _finding(entry="payment")], "run-1")
    assert _record(db, "quarantined", [_finding(entry="payment")], "run-2") == {"opened": 0, "released": 1}
    open_kinds = {r.entry_kind for r in _records(db) if r.released_at is None}
    assert open_kinds == {"payment"}


def test_an_outcome_releases_only_its_own_agreements_records(db):
    """One run judges a group of agreements at once; the same bill id at two of them is two bills."""
    other = Finding("agr_0002", BILL, 1, "vat_mismatch", "stop", "invoice", "1", "vat")

    def judge(mine: BillOutcome, run: str) -> None:
        with session(db) as sess:
            quarantine.record(sess, [mine, BillOutcome("agr_0002", BILL, 1, "quarantined", [other])], run)

    judge(BillOutcome(AGR, BILL, 1, "quarantined", [_finding()]), "run-1")
    judge(BillOutcome(AGR, BILL, 1, "planned", []), "run-2")  # agr_0001's bill passes, agr_0002's still fails
    [mine], [theirs] = _records(db), _records(db, "agr_0002")
    assert mine.released_at is not None
    assert theirs.released_at is None and _state(db, "agr_0002") == "quarantined"


def test_a_warning_is_recorded_but_not_counted_as_a_stop(db):
    assert _record(db, "planned", [_finding(rule="date_in_future", severity="warn")], "run-1") == {
        "opened": 0,
        "released": 0,
    }
    [row] = _records(db)
    assert row.severity == "warn" and _state(db) == "planned"


def test_an_economic_refusal_is_not_released_by_validation_passing(db):
    """e-conomic refused the voucher: only a load that gets the entry in may release it."""
    _record(db, "quarantined", [_finding(rule="economic_rejected", value=None)], "run-1")
    _record(db, "planned", [], "run-2")
    [row] = _records(db)
    assert row.released_at is None


@pytest.mark.parametrize("state", ["waiting", "withdraw"])
def test_a_bill_no_longer_to_book_releases_every_record_with_that_reason(db, state):
    _record(db, "quarantined", [_finding(), _finding(rule="economic_rejected", value=None)], "run-1")
    _record(db, state, [], "run-2")
    rows = _records(db)
    assert len(rows) == 2
    assert all(r.released_at is not None for r in rows)
    assert {r.release_reason for r in rows} == {f"bill no longer to book ({state})"}
    assert _state(db) == state


def test_the_staged_state_is_written_only_for_the_version_judged(db):
    """A newer version staged meanwhile keeps ``new``: it is judged in turn, not carried by the old outcome."""
    _stage(db, AGR, BILL, 2)
    _record(db, "quarantined", [_finding()], "run-1", version=1)
    assert _state(db) == "new"
    _record(db, "planned", [], "run-2", version=2)
    assert _state(db) == "planned"
    [row] = _records(db)
    assert row.release_reason == "rule vat_mismatch passes since run run-2"
