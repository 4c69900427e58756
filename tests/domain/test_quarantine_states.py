"""The staged state a validation writes belongs to the version it judged."""

from __future__ import annotations

from datetime import UTC, datetime

from roger_economic import quarantine
from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.model import BillOutcome
from tests.faults.helpers import ROOT


def _stage(url: str, version: int, state: str) -> None:
    with session(url) as sess:
        row = sess.get(models.StagedBill, ("agr_0001", "bill_x")) or models.StagedBill(
            agreement_id="agr_0001", bill_id="bill_x", staged_at=datetime.now(UTC), updated_at=""
        )
        row.version, row.payload, row.state = version, {"id": "bill_x", "version": version}, state
        sess.add(row)


def test_a_newer_version_staged_meanwhile_keeps_new_and_is_judged_in_turn(project_db):
    """An overlapping run staged v5 while this run judged v4: v4's outcome must not mark the bill planned
    (its load would then settle it booked and v5 would never be judged)."""
    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)
    _stage(project_db, 4, "new")
    _stage(project_db, 5, "new")  # the overlapping run's newer version
    with session(project_db) as sess:
        quarantine.record(sess, [BillOutcome("agr_0001", "bill_x", 4, "planned", [])], "run-a")
    with session(project_db) as sess:
        assert sess.get_one(models.StagedBill, ("agr_0001", "bill_x")).state == "new"
    with session(project_db) as sess:
        quarantine.record(sess, [BillOutcome("agr_0001", "bill_x", 5, "planned", [])], "run-b")
    with session(project_db) as sess:
        assert sess.get_one(models.StagedBill, ("agr_0001", "bill_x")).state == "planned"


def test_an_unforeseen_error_holding_a_token_is_stored_and_logged_scrubbed(project_db, caplog):
    """An error nobody foresaw (not an ApiError, which scrubs itself) may quote a token: the run report and
    the log keep its kind and place, never the token."""
    from roger_economic.steps import fanout

    load_file(ROOT / "config" / "agreements.example.yaml", url=project_db)

    token = "sk_live_" + "abcdef0123456789"  # built at run time: the traceback's source lines are logged

    def work(aid: str) -> dict:
        raise RuntimeError(f"request failed: Authorization: Bearer {token}")

    results = fanout.each(["agr_0001"], work, "run-scrub", "load")
    assert results["agr_0001"]["outcome"] == "failed"
    assert "RuntimeError" in results["agr_0001"]["message"]
    with session(project_db) as sess:
        stored = sess.get_one(models.RunReport, ("run-scrub", "agr_0001", "load")).message
    for text in (results["agr_0001"]["message"], stored, caplog.text):
        assert token not in text
