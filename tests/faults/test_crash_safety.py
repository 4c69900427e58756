"""The load task's process is killed (SIGKILL) in the middle of its batches; the next run books every bill
exactly once: the dead run's lease is taken over, its in-flight entries are found in e-conomic by bill id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.faults.helpers import (
    AGREEMENTS,
    ALL,
    all_roger_ids,
    arm,
    check,
    disarm,
    ledger_rows,
    prepare,
    run_bills,
    state_of,
)

LOAD = """
from roger_economic import pipeline
from roger_economic.credentials import Endpoints
pipeline.load(["agr_0001"], Endpoints.from_env(), "run-to-be-killed")
"""


def _live_vouchers(economic) -> int:
    return sum(1 for v in state_of(economic, 1)["vouchers"] if v["status"] != "deleted")


def test_sigkill_mid_batch_then_rerun_books_each_bill_once(demo, airflow_db):
    roger, economic = demo
    prepare(["agr_0001", "agr_0002", "agr_0003"])
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    assert planned >= 4
    # one voucher per POST, each answered slowly: the kill lands between or inside the batches
    arm(economic, kind="slow", delay=0.4, scope="700001", method="POST", path=r"^/journals/\d+/vouchers$", times=-1)
    env = {**os.environ, "ROGER_ECONOMIC_BATCH_SIZE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", LOAD], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _live_vouchers(economic) < 2:
            assert proc.poll() is None, f"the load ended before it could be killed: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no voucher arrived"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
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
