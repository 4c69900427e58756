"""The load task's process is killed (SIGKILL) in the middle of its batches; the next run books every bill
exactly once: the dead run's lease is taken over, its in-flight entries are found in e-conomic by bill id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from roger_economic import pipeline
from roger_economic.context import load_contexts
from roger_economic.db import models, session
from roger_economic.errors import IntegrationError
from roger_economic.posting.leases import lease
from roger_economic.posting.loader import Loader
from tests.faults.helpers import (
    AGREEMENTS,
    ALL,
    all_roger_ids,
    arm,
    check,
    disarm,
    endpoints,
    ledger_rows,
    prepare,
    run_bills,
    state_of,
    voucher_posts,
)

LOAD = """
from roger_economic import pipeline
from roger_economic.credentials import Endpoints
pipeline.load(["agr_0001"], Endpoints.from_env(), "run-to-be-killed")
"""


GROUP_LOAD = """
from roger_economic import pipeline
from roger_economic.credentials import Endpoints
from roger_economic.posting import records
records.WRITE_EVERY = 3600  # the finished agreements' records wait for the group's end, where the kill comes first
pipeline.load(["agr_0001", "agr_0002", "agr_0003"], Endpoints.from_env(), "group-to-be-killed")
"""


def _load_killed_when(ready: Callable[[], bool], env: dict[str, str] | None = None, script: str = LOAD) -> None:
    """Run agr_0001's load (or ``script``) in its own process and SIGKILL it as soon as ``ready()`` holds."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert proc.poll() is None, f"the load ended before it could be killed: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the load never got that far"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()


def _posted_and_in_flight(posted: int) -> bool:
    statuses = [r.status for r in ledger_rows("agr_0001")]
    return statuses.count("posted") >= posted and "posting" in statuses


def _live_vouchers(economic) -> int:
    return sum(1 for v in state_of(economic, 1)["vouchers"] if v["status"] != "deleted")


def test_sigkill_mid_batch_then_rerun_books_each_bill_once(demo, airflow_db):
    roger, economic = demo
    prepare(["agr_0001", "agr_0002", "agr_0003"])
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    assert planned >= 4
    # one voucher per POST, each answered slowly: the kill lands between or inside the batches
    arm(economic, kind="slow", delay=0.4, scope="700001", method="POST", path=r"^/journals/\d+/vouchers$", times=-1)
    # killed while a batch is in flight (its POST sleeping in the sandbox), after two were answered;
    # watching e-conomic's voucher count instead would fire just as an answer arrives, when the kill
    # can land between two batches
    _load_killed_when(lambda: _posted_and_in_flight(2), {"ROGER_ECONOMIC_BATCH_SIZE": "1"})
    disarm(economic)
    time.sleep(1)  # a request the dead process had sent still lands in e-conomic
    rows = ledger_rows("agr_0001")
    assert any(r.status == "posting" for r in rows), "the kill should leave a batch in flight"
    assert any(r.status == "planned" for r in rows), "the kill should come before the last batch"
    killed_with = _live_vouchers(economic)
    assert 2 <= killed_with < planned

    run = run_bills(ALL)  # the next run: the bills DAG, a new process holding no lease

    assert run.state == "success", run.failures
    rows = ledger_rows("agr_0001")
    assert not [r for r in rows if r.status in ("posting", "planned")]
    posted = [r for r in rows if r.status == "posted"]
    assert len(posted) == planned
    assert _live_vouchers(economic) == planned
    bills = {i: sorted(all_roger_ids(roger, i)) for i in AGREEMENTS}
    result = check(roger, economic, bills, final=True)
    assert result.duplicates == 0 and result.lost == 0 and result.foreign == 0, result.problems
    assert result.booked > 0


def _attached_in_economic(economic) -> dict[tuple[str, int], int]:
    return {
        (v["accountingYear"], v["voucherNumber"]): (v["attachment"] or {}).get("pages", 0)
        for v in state_of(economic, 1)["vouchers"]
        if v["status"] != "deleted"
    }


def test_sigkill_between_attachments_then_rerun_attaches_each_pdf_once(demo, airflow_db):
    """Attachments are recorded a few at a time: uploads the dead process never recorded are met again by
    the rerun as 'already has an attachment', so every voucher ends with exactly one PDF, none left out.
    The last vouchers posted are recorded with the load's next transaction: killed before it, they are found
    in e-conomic by the rerun, never posted again."""
    roger, economic = demo
    prepare(["agr_0001", "agr_0002", "agr_0003"])
    arm(economic, kind="slow", delay=0.3, scope="700001", method="POST", path=r"/attachment/file$", times=-1)
    _load_killed_when(lambda: sum(1 for pages in _attached_in_economic(economic).values() if pages) >= 3)
    disarm(economic)
    time.sleep(1)
    with_pdf = [r for r in ledger_rows("agr_0001") if r.entry_kind == "invoice" and r.payload.get("has_document")]
    uploaded = _attached_in_economic(economic)
    unrecorded = [r for r in with_pdf if r.attachment == "pending" and uploaded[(r.accounting_year, r.voucher_number)]]
    assert unrecorded, "the kill should leave uploads the ledger has not recorded yet"
    assert any(r.status == "posting" for r in ledger_rows("agr_0001")), "and vouchers it has not recorded yet"

    run = run_bills(ALL)

    assert run.state == "success", run.failures
    uploaded = _attached_in_economic(economic)
    for row in [r for r in ledger_rows("agr_0001") if r.entry_kind == "invoice" and r.payload.get("has_document")]:
        assert row.attachment == "attached", row.bill_id
        assert uploaded[(row.accounting_year, row.voucher_number)] == 1, row.bill_id
    assert state_of(economic, 1)["counters"]["attachments"].get("PATCH", 0) == 0
    posted = [r for r in ledger_rows("agr_0001") if r.status == "posted"]
    assert _live_vouchers(economic) == len(posted)  # one voucher per booked entry: none posted again
    bills = {i: sorted(all_roger_ids(roger, i)) for i in AGREEMENTS}
    result = check(roger, economic, bills, final=True)
    assert result.duplicates == 0 and result.lost == 0, result.problems


def test_sigkill_before_the_group_wrote_a_finished_agreement_s_records_then_rerun_books_each_bill_once(
    demo, airflow_db
):
    """A group's load leaves each finished agreement's last records (its vouchers posted, its uploads) and its
    lease to the group's next write, about a second later. Killed before that write, the rerun finds those
    vouchers in e-conomic and meets those uploads as already made: every bill booked once, every PDF once."""
    roger, economic = demo
    ids = list(AGREEMENTS.values())
    prepare(ids)
    planned = {aid: sum(1 for r in ledger_rows(aid) if r.status == "planned") for aid in ids}
    with_pdf = sum(1 for r in ledger_rows("agr_0001") if r.entry_kind == "invoice" and r.payload.get("has_document"))
    assert planned["agr_0001"] >= 4 and with_pdf >= 1
    # the other two agreements' vouchers answered slowly: the group is still loading once agr_0001 is done
    for scope in ("700002", "700003"):
        arm(economic, kind="slow", delay=8, scope=scope, method="POST", path=r"^/journals/\d+/vouchers$", times=-1)

    def agr_0001_done() -> bool:
        uploaded = [pages for pages in _attached_in_economic(economic).values() if pages]
        return _live_vouchers(economic) >= planned["agr_0001"] and len(uploaded) >= with_pdf

    _load_killed_when(agr_0001_done, script=GROUP_LOAD)
    disarm(economic)
    time.sleep(9)  # the slow requests the dead process had sent still land in e-conomic
    statuses = {r.status for r in ledger_rows("agr_0001")}  # its last batch's answer not written yet
    assert "posting" in statuses and "planned" not in statuses, "agr_0001's last records should wait for the group"
    with session() as sess:
        assert sess.get_one(models.Agreement, "agr_0001").lease_owner.endswith(":group-to-be-killed")

    run = run_bills(ALL)

    assert run.state == "success", run.failures
    for i, aid in AGREEMENTS.items():
        rows = ledger_rows(aid)
        assert {r.status for r in rows} == {"posted"}, aid
        assert len(rows) == planned[aid], aid
        for row in rows:
            if row.entry_kind == "invoice" and row.payload.get("has_document"):
                assert row.attachment == "attached", (aid, row.bill_id)
        live = [v for v in state_of(economic, i)["vouchers"] if v["status"] != "deleted"]
        assert len(live) == planned[aid], aid  # none posted twice
        assert all((v["attachment"] or {}).get("pages", 0) <= 1 for v in live), aid
    bills = {i: sorted(all_roger_ids(roger, i)) for i in AGREEMENTS}
    result = check(roger, economic, bills, final=True)
    assert result.duplicates == 0 and result.lost == 0 and result.foreign == 0, result.problems


def test_a_lease_is_shared_by_turns_and_a_dead_holder_s_lease_is_taken_over(demo):
    """Two runs never load one agreement at once; a holder that died is not waited for."""
    import socket

    from roger_economic.db import session
    from roger_economic.posting.leases import lease, release

    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    first, second = f"{host}:{os.getpid()}:run-1", f"{host}:{os.getpid()}:run-2"
    gone = f"{host}:{dead.pid}:run-0"
    with session() as sess:
        assert lease(sess, "agr_0001", first)
    with session() as sess:
        assert not lease(sess, "agr_0001", second)  # held by a live run: wait
        assert lease(sess, "agr_0001", first)  # its holder may renew it
        release(sess, "agr_0001", first)
    with session() as sess:
        assert lease(sess, "agr_0001", second)
        release(sess, "agr_0001", second)
    with session() as sess:  # a holder on this host whose process has ended
        assert lease(sess, "agr_0001", gone)
    with session() as sess:
        assert lease(sess, "agr_0001", first)
        assert not lease(sess, "agr_0001", second)


def test_a_group_takes_the_free_leases_at_once_and_leaves_a_held_one_to_its_holder(demo):
    """A group's load takes every free lease in one go; an agreement another live run holds is not taken."""
    import socket

    from roger_economic.db import models, session
    from roger_economic.posting.leases import lease, lease_all, release, release_all

    host = socket.gethostname()
    other, group = f"{host}:{os.getpid()}:backfill", f"{host}:{os.getpid()}:nightly"
    with session() as sess:
        assert lease(sess, "agr_0002", other)
    with session() as sess:
        assert lease_all(sess, ["agr_0001", "agr_0002", "agr_0003"], group) == {"agr_0001", "agr_0003"}
    with session() as sess:
        owners = {a.id: a.lease_owner for a in sess.query(models.Agreement)}
    assert owners["agr_0002"] == other
    with session() as sess:
        release_all(sess, ["agr_0001", "agr_0002", "agr_0003"], group)  # gives back only its own
        release(sess, "agr_0002", other)
    with session() as sess:
        assert lease_all(sess, ["agr_0001", "agr_0002", "agr_0003"], other) == {"agr_0001", "agr_0002", "agr_0003"}


def test_one_agreement_failing_in_a_group_leaves_the_others_booked_and_no_lease_held(demo):
    """A group loads together: an agreement e-conomic refuses fails alone, named; the others' bills are
    booked (their states settled for the group), and no lease is left behind for the next run to wait on."""
    import pytest

    from roger_economic import pipeline
    from roger_economic.db import models, session
    from tests.faults.helpers import endpoints
    from tests.integration.helpers import staged_states

    _roger, economic = demo
    ids = list(AGREEMENTS.values())
    prepare(ids)
    # agreement 2's vouchers are refused every time (a server error that outlasts the retries)
    arm(economic, kind="status", status=500, scope="700002", method="POST", path=r"^/journals/\d+/vouchers$", times=-1)
    with pytest.raises(pipeline.AgreementsFailed) as failed:
        pipeline.load(ids, endpoints(), "run-group")
    disarm(economic)
    assert set(failed.value.failures) == {"agr_0002"}
    for aid in ("agr_0001", "agr_0003"):
        assert {r.status for r in ledger_rows(aid)} == {"posted"}, aid
        assert "planned" not in staged_states(aid).values(), aid  # settled: booked, quarantined, waiting …
    assert "posted" not in {r.status for r in ledger_rows("agr_0002")}  # refused: it waits for the next run
    with session() as sess:
        assert {a.id: a.lease_owner for a in sess.query(models.Agreement)} == dict.fromkeys(ids)
    assert pipeline.load(["agr_0002"], endpoints(), "run-again")["agr_0002"]["outcome"] == "ok"
    assert {r.status for r in ledger_rows("agr_0002")} == {"posted"}


def test_a_load_that_lost_its_lease_posts_nothing_more(demo):
    """Whatever happened to the renewals: once another run holds the agreement, this load marks and posts
    no batch (the lease is checked in the transaction that marks each batch)."""
    _roger, economic = demo
    me = f"{socket.gethostname()}:{os.getpid()}:run-lost"
    prepare(["agr_0001"])
    with session() as sess:
        ctx = load_contexts(sess, ["agr_0001"])["agr_0001"]
        assert lease(sess, "agr_0001", me)
    posts = voucher_posts(economic, 1)
    with session() as sess:  # its lease ran out meanwhile and a backfill took the agreement
        sess.get_one(models.Agreement, "agr_0001").lease_owner = "another-host:1:run-backfill"
    economic_client, roger_client = pipeline.clients(ctx.settings, endpoints())
    loader = Loader(session, ctx, economic_client, roger_client, "run-lost", owner=me)

    with pytest.raises(IntegrationError, match="lost its lease"):
        loader.run()

    assert voucher_posts(economic, 1) == posts
    assert "posting" not in {r.status for r in ledger_rows("agr_0001")}
    assert "planned" in {r.status for r in ledger_rows("agr_0001")}
    with session() as sess:  # not given back by the load that lost it
        assert sess.get_one(models.Agreement, "agr_0001").lease_owner == "another-host:1:run-backfill"
