"""A lost answer on the voucher POST never books twice: within the hour the idempotency key replays the
answer; after the hour (the key forgotten) the loader finds the entries in e-conomic by bill id first."""

from __future__ import annotations

import pytest

from roger_economic import pipeline
from roger_economic.db import models, session
from tests.faults.helpers import (
    arm,
    control,
    endpoints,
    fired,
    ledger_rows,
    prepare,
    state_of,
)
from tests.integration.helpers import live_entries

VOUCHERS = r"^/journals/\d+/vouchers$"


def _journals_planned(aid: str) -> set[int]:
    return {r.journal_number for r in ledger_rows(aid) if r.status == "planned"}


def _vouchers(economic) -> int:
    return sum(1 for v in state_of(economic, 1)["vouchers"] if v["status"] != "deleted")


def _attachment_pages(economic) -> dict[tuple[str, int], int]:
    return {
        (v["accountingYear"], v["voucherNumber"]): (v["attachment"] or {}).get("pages", 0)
        for v in state_of(economic, 1)["vouchers"]
    }


def _loader_ready_to_post(run_id: str):
    """agr_0001's load taken step by step, up to the vouchers: (loader, its e-conomic client, planned rows)."""
    from roger_economic.context import load_contexts
    from roger_economic.posting.loader import Loader

    prepare(["agr_0001"])
    with session() as sess:
        ctx = load_contexts(sess, ["agr_0001"])["agr_0001"]
    economic, roger = pipeline.clients(ctx.settings, endpoints())
    loader = Loader(session, ctx, economic, roger, run_id)
    planned = loader.withdraw_and_replace(loader._read())
    loader.create_suppliers(planned)
    return loader, economic, planned


def test_lost_answer_within_the_hour_is_replayed_by_its_key(demo):
    _roger, economic = demo
    prepare(["agr_0001"])
    journals = _journals_planned("agr_0001")
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    assert planned > 0
    arm(economic, kind="lost_answer", scope="700001", method="POST", path=VOUCHERS, times=1)

    result = pipeline.load(["agr_0001"], endpoints(), "run-lost-answer")

    assert result["agr_0001"]["outcome"] == "ok"
    assert [f["kind"] for f in fired(economic)] == ["lost_answer"]
    state = state_of(economic, 1)
    # one POST per journal, plus the one retry of the lost one, answered from the idempotency cache
    assert state["counters"]["vouchers"]["POST"] == len(journals) + 1
    rows = ledger_rows("agr_0001")
    assert {r.status for r in rows} == {"posted"}
    assert _vouchers(economic) == len(rows) == planned
    assert max(live_entries(state).values()) == 1


def test_lost_answer_after_the_hour_is_found_by_bill_id_before_posting_again(demo):
    _roger, economic = demo
    prepare(["agr_0001"])
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    # every try of the first batch is processed and its answer dropped: the run gives up
    arm(economic, kind="lost_answer", scope="700001", method="POST", path=VOUCHERS, times=4)
    with pytest.raises(pipeline.AgreementsFailed, match=r"agr_0001.*connection lost"):
        pipeline.load(["agr_0001"], endpoints(), "run-1")
    in_flight = [r for r in ledger_rows("agr_0001") if r.status == "posting"]
    assert in_flight, "the ledger should show the batch whose answer never came"
    assert _vouchers(economic) == len(in_flight)  # e-conomic has them, once (the retries were replays)
    posts_before = state_of(economic, 1)["counters"]["vouchers"]["POST"]

    # an hour and more later e-conomic has forgotten the key: only the look-up by bill id protects now
    control(economic, "POST", "clock", {"advance_seconds": 3700})
    result = pipeline.load(["agr_0001"], endpoints(), "run-2")

    assert result["agr_0001"]["outcome"] == "ok"
    assert result["agr_0001"]["recovered"] == len(in_flight)
    rows = ledger_rows("agr_0001")
    assert {r.status for r in rows} == {"posted"}
    state = state_of(economic, 1)
    assert _vouchers(economic) == len(rows) == planned
    assert max(live_entries(state).values()) == 1
    # the recovered batch was not posted again: only the journals still to do got a POST
    remaining = {r.journal_number for r in rows if r.id not in {x.id for x in in_flight}}
    assert state["counters"]["vouchers"]["POST"] == posts_before + len(remaining)
    # and the recovered invoices still got their PDF, once
    pages = _attachment_pages(economic)
    for row in rows:
        if row.entry_kind == "invoice" and row.payload.get("has_document"):
            assert row.attachment == "attached", row.bill_id
            assert pages[(row.accounting_year, row.voucher_number)] == 1, row.bill_id


def test_an_entry_re_planned_during_a_load_waits_for_the_next_load(demo):
    """A backfill's validation may re-plan an entry while a load runs: the load must not post the content it
    read earlier; the entry stays planned and the next load posts what is planned now."""
    loader, economic, planned = _loader_ready_to_post("run-1")
    moved = planned[0]
    with session() as sess:  # what an overlapping run's ledger.plan does to a planned row
        sess.get(models.Posting, moved.id).payload_hash = "re-planned-meanwhile"

    loader.post_planned(planned)
    loader._finish()  # the load's last transaction: the posted vouchers are recorded with it at the latest

    rows = {r.id: r for r in ledger_rows("agr_0001")}
    assert rows[moved.id].status == "planned"
    assert {rows[p.id].status for p in planned[1:]} == {"posted"}
    assert loader.result.counts["replanned_meanwhile"] == 1
    # the batch key kept with the posted rows is the idempotency key their POST carried (it names the
    # vouchers actually sent, without the re-planned one): a retry with it is answered from e-conomic's cache
    for journal, key in {(rows[p.id].journal_number, rows[p.id].batch_key) for p in planned[1:]}:
        again = economic.http.request(
            "POST", f"/journals/{journal}/vouchers", data=b"[]", idempotency_key=key, raw=True
        )
        assert again.from_cache
    assert pipeline.load(["agr_0001"], endpoints(), "run-2")["agr_0001"]["outcome"] == "ok"
    assert {r.id: r.status for r in ledger_rows("agr_0001")}[moved.id] == "posted"


def test_a_late_posted_record_does_not_undo_what_a_run_that_took_over_found(demo):
    """A load past its deadline (or a stopped task) records its last vouchers late, after its lease lapsed:
    by then another run may have taken the agreement over and sorted the rows out itself (found among the
    booked entries, superseded by a newer version). The late record must leave that as it is."""
    late, _economic, planned = _loader_ready_to_post("run-late")
    late.post_planned(planned)  # posted in e-conomic; the record waits for the load's next transaction
    sent = [r for r in ledger_rows("agr_0001") if r.status == "posting"]
    assert len(sent) >= 2
    booked, superseded = sent[0], sent[1]
    with session() as sess:  # what the run that took over recorded meanwhile
        row = sess.get(models.Posting, booked.id)
        row.status, row.entry_number, row.batch_key = "posted", None, None  # booked by the accountant since
        row = sess.get(models.Posting, superseded.id)
        row.status, row.batch_key = "superseded", None  # its draft deleted: a newer version of the bill came

    late._finish()

    rows = {r.id: r for r in ledger_rows("agr_0001")}
    assert rows[booked.id].status == "posted" and rows[booked.id].entry_number is None
    assert rows[superseded.id].status == "superseded"
    assert {rows[r.id].status for r in sent[2:]} <= {"posted"}  # the others are recorded as usual


def test_late_upload_and_supplier_records_leave_what_a_run_that_took_over_wrote(demo):
    """Records written late (a group's write after a lease lapsed) complete only what is still theirs: a
    supplier link another run completed keeps its number, and a row another run planned again (its draft
    deleted by the accountant) stays waiting for its own upload."""
    from sqlalchemy import select

    from roger_economic.posting import records

    late, _economic, planned = _loader_ready_to_post("run-late")
    created = dict(late.suppliers_unsaved)
    assert created, "the demo agreement's load should create suppliers"
    vendor_key = next(iter(created))
    with session() as sess:  # the run that took over found that supplier by name and completed the link
        link = sess.scalar(
            select(models.SupplierLink).where(
                models.SupplierLink.agreement_id == "agr_0001", models.SupplierLink.vendor_key == vendor_key
            )
        )
        link.how, link.supplier_number = "created", 99_999
    late.post_planned(planned)
    late._finish()
    invoice = next(r for r in ledger_rows("agr_0001") if r.entry_kind == "invoice" and r.attachment == "pending")
    with session() as sess:  # the accountant deleted its draft; the other run planned it again
        sess.get(models.Posting, invoice.id).status = "planned"

    with session() as sess:
        records.save_attached(sess, [invoice.id])

    with session() as sess:
        assert sess.get(models.Posting, invoice.id).attachment == "pending"
        link = sess.scalar(
            select(models.SupplierLink).where(
                models.SupplierLink.agreement_id == "agr_0001", models.SupplierLink.vendor_key == vendor_key
            )
        )
        assert link.supplier_number == 99_999
