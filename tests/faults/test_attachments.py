"""Each invoice voucher gets its PDF once: across reruns, after a lost answer, never silently dropped."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from devkit import local
from roger_economic import pipeline
from roger_economic.config import load_file
from roger_economic.db import models, session
from tests.faults.helpers import (
    arm,
    control,
    endpoints,
    ledger_rows,
    prepare,
    run_bills,
    run_master_data,
    state_of,
    window,
)
from tests.integration.helpers import task_states

ATTACHMENT = r"/attachment/file$"


def _pages(economic, i: int = 1) -> dict[tuple[str, int], int]:
    return {
        (v["accountingYear"], v["voucherNumber"]): (v["attachment"] or {}).get("pages", 0)
        for v in state_of(economic, i)["vouchers"]
    }


def _with_document(aid: str) -> list[models.Posting]:
    return [r for r in ledger_rows(aid) if r.entry_kind == "invoice" and r.payload.get("has_document")]


def test_rerun_after_a_lost_attachment_answer_adds_no_second_page(demo):
    _roger, economic = demo
    prepare(["agr_0001"])
    # the first upload is stored, every answer to it is lost: the run gives up
    arm(economic, kind="lost_answer", scope="700001", method="POST", path=ATTACHMENT, times=4)
    with pytest.raises(pipeline.AgreementsFailed, match="agr_0001"):
        pipeline.load(["agr_0001"], endpoints(), "run-1")
    # an hour later the idempotency key is forgotten; the rerun must not add the PDF again
    control(economic, "POST", "clock", {"advance_seconds": 3700})
    assert pipeline.load(["agr_0001"], endpoints(), "run-2")["agr_0001"]["outcome"] == "ok"
    assert pipeline.load(["agr_0001"], endpoints(), "run-3")["agr_0001"]["outcome"] == "ok"

    pages = _pages(economic)
    rows = _with_document("agr_0001")
    assert rows
    for row in rows:
        assert row.attachment == "attached"
        assert pages[(row.accounting_year, row.voucher_number)] == 1, row.bill_id
    assert state_of(economic, 1)["counters"]["attachments"].get("PATCH", 0) == 0


def test_a_document_over_9_mb_is_a_review_item_not_dropped(demo):
    roger, economic = demo
    bill = control(
        roger,
        "POST",
        "bills/add",
        {
            "company_id": "cmp_0001",
            "bill": {
                "updated_at": "2026-11-20T10:00:00Z",
                "status": "UPCOMING",
                "document_type": "bill",
                "has_document": True,
                "category_id": "cat_office",
                "deleted": False,
            },
        },
    )
    control(
        roger,
        "POST",
        "bills/document",
        {"company_id": "cmp_0001", "bill_id": bill["id"], "bytes": 9 * 1024 * 1024 + 500_000},
    )
    prepare(["agr_0001"])
    result = pipeline.load(["agr_0001"], endpoints(), "run-large")

    assert result["agr_0001"]["outcome"] == "ok"
    assert result["agr_0001"]["attachments_too_large"] == 1 and result["agr_0001"]["review"] >= 1
    row = next(r for r in ledger_rows("agr_0001") if r.bill_id == bill["id"] and r.entry_kind == "invoice")
    assert row.status == "posted" and row.attachment == "too_large"
    assert _pages(economic)[(row.accounting_year, row.voucher_number)] == 0
    with session() as sess:
        review = list(sess.scalars(select(models.ReviewItem).where(models.ReviewItem.bill_id == bill["id"])))
    assert len(review) == 1 and "9 MB" in review[0].message and bill["id"] in review[0].message
    # the others still got theirs
    assert all(r.attachment == "attached" for r in _with_document("agr_0001") if r.bill_id != bill["id"])


def _agreement_10(path, book_without_attachment: bool):
    doc = yaml.safe_load(local.write_agreements_file(path, 10).read_text(encoding="utf-8"))
    doc["agreements"] = [a for a in doc["agreements"] if a["id"] == "agr_0010"]
    doc["agreements"][0]["book_without_attachment"] = book_without_attachment
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_an_agreement_without_the_scanning_add_on_stops_unless_booking_without_attachment(
    project_db, airflow_db, fast_retries, tmp_path
):
    roger, economic = local.start_sandboxes(agreements=10, bills=6)
    try:
        load_file(_agreement_10(tmp_path / "agreements.yaml", book_without_attachment=False))
        run_master_data()
        day = window("2026-11-25") | {"from_date": "2026-11-18"}

        stopped = run_bills(day)
        assert stopped.state == "failed"
        assert "agr_0010" in stopped.failures and "scanning add-on" in stopped.failures["agr_0010"]
        assert not state_of(economic, 10)["vouchers"]
        # a rerun finds nothing new, yet a stopped agreement is never a quiet night: it is reported again
        again = run_bills(day)
        assert again.state == "failed" and "scanning add-on" in again.failures["agr_0010"]
        states = task_states(again.run_id)
        assert states["agreements.validate"] == states["agreements.load"] == {"success"}

        load_file(_agreement_10(tmp_path / "agreements.yaml", book_without_attachment=True), replace=True)
        booked = run_bills(day)
        assert booked.state == "success", booked.failures
        vouchers = state_of(economic, 10)["vouchers"]
        assert vouchers and all(v["attachment"] is None for v in vouchers)
        assert {r.attachment for r in _with_document("agr_0010")} <= {"skipped"}
        assert not state_of(economic, 10)["counters"].get("attachments")
    finally:
        roger.stop()
        economic.stop()


def test_agreements_with_nothing_to_load_are_passed_by_and_unfinished_ones_are_not(demo):
    """The load skips agreements with no work (a rerun's usual case), but never one with a PDF still to attach
    or a bill to withdraw: those are finished by the next load."""
    from roger_economic.posting.work import agreements_with_work

    _roger, economic = demo
    ids = ["agr_0001", "agr_0002", "agr_0003"]
    prepare(ids)
    with session() as sess:
        assert agreements_with_work(sess, ids) == set(ids)  # everything is planned
    assert all(r["outcome"] == "ok" for r in pipeline.load(ids, endpoints(), "run-1").values())
    with session() as sess:
        assert agreements_with_work(sess, ids) == set()

    # a PDF whose upload was never recorded, and a bill deleted in Roger after booking
    unattached = _with_document("agr_0001")[0]
    deleted = next(r for r in ledger_rows("agr_0002") if r.status == "posted")
    with session() as sess:
        sess.get(models.Posting, unattached.id).attachment = "pending"
        staged = sess.get(models.StagedBill, ("agr_0002", deleted.bill_id))
        staged.state = "withdraw"
    with session() as sess:
        assert agreements_with_work(sess, ids) == {"agr_0001", "agr_0002"}

    results = pipeline.load(ids, endpoints(), "run-2")

    assert results["agr_0003"] == {"outcome": "ok"}
    assert results["agr_0001"]["attachments_attached"] == 1
    assert results["agr_0002"]["withdrawn"] >= 1
    assert next(r for r in ledger_rows("agr_0001") if r.id == unattached.id).attachment == "attached"
    assert {r.status for r in ledger_rows("agr_0002") if r.bill_id == deleted.bill_id} == {"withdrawn"}
    assert _pages(economic)[(unattached.accounting_year, unattached.voucher_number)] == 1


def test_a_group_is_settled_only_when_nothing_waits(demo):
    """Validate and load are skipped for a group only when they would do nothing: never while entries wait to be
    posted (a failed load last night), nor after a setup change that may release quarantined bills."""
    from roger_economic.db import models as m

    ids = ["agr_0001", "agr_0002", "agr_0003"]
    quiet = {aid: {"outcome": "ok", "seen": 8, "unchanged": 8} for aid in ids}
    prepare(ids)  # planned, not posted: as after a night whose load failed
    assert not pipeline.settled(ids, "run-1", quiet)
    assert not pipeline.settled(ids, "run-1", {**quiet, "agr_0001": {"outcome": "ok", "staged": 1}})
    assert all(r["outcome"] == "ok" for r in pipeline.load(ids, endpoints(), "run-1").values())

    assert pipeline.settled(ids, "run-2", quiet)
    with session() as sess:
        reported = {
            (r.agreement_id, r.phase): r.outcome
            for r in sess.scalars(select(m.RunReport).where(m.RunReport.run_id == "run-2"))
        }
    assert reported == {(aid, phase): "ok" for aid in ids for phase in ("validate", "load")}

    with session() as sess:  # a mapping changed: quarantined bills must be judged again
        sess.get(m.Agreement, "agr_0003").default_account = 3990
    assert not pipeline.settled(ids, "run-3", quiet)


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("journals", []),  # the agreement's journals are gone
        ("accounts", []),  # and its chart of accounts
        ("self", {"modules": []}),  # the scanning add-on was switched off (book_without_attachment is off)
    ],
)
def test_a_group_is_not_settled_when_its_master_data_stops_an_agreement(demo, kind, payload):
    """A quiet night still reports an agreement that cannot book: the master data that stops it is read,
    even when its refresh time (what the setup fingerprint sees) did not move."""
    from roger_economic.db import models as m

    ids = ["agr_0001", "agr_0002", "agr_0003"]
    quiet = {aid: {"outcome": "ok", "seen": 8, "unchanged": 8} for aid in ids}
    prepare(ids)
    assert all(r["outcome"] == "ok" for r in pipeline.load(ids, endpoints(), "run-1").values())
    assert pipeline.settled(ids, "run-2", quiet)

    with session() as sess:
        sess.get(m.MasterData, ("agr_0002", kind)).payload = payload
    assert not pipeline.settled(ids, "run-3", quiet)
