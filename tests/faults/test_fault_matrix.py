"""Exactly once under faults: the bills DAG under each fault, then a plain retry run.

Each fault gets its own day of fresh Roger bills (three per agreement) and a
run over that day, so that one project database, one master-data run and one
pair of sandboxes serve the whole matrix. After the faulty run and after the
retry run: no duplicate entry in any journal, no bill in another agreement's
journals, no attachment twice; the faulty run either succeeds or fails naming
the agreement and the cause; after the retry every bill of the day is booked
exactly once or quarantined/waiting/withdrawn with a reason (``lost`` counts
the ones that are not). ``pytest -s`` shows the matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from devkit import local
from roger_economic.config import load_file
from tests.faults.helpers import (
    AGREEMENTS,
    FAST_RETRIES,
    ROOT,
    add_bills,
    arm,
    check,
    control,
    disarm,
    fired,
    print_matrix,
    run_bills,
    run_master_data,
    window,
)

BILLS_PER_AGREEMENT = 3
VOUCHERS = r"^/journals/\d+/vouchers$"
ATTACHMENT = r"/attachment/file$"


@dataclass
class Fault:
    name: str
    economic: list[dict[str, Any]] = field(default_factory=list)
    roger: list[dict[str, Any]] = field(default_factory=list)
    revoke_roger: int | None = None  # agreement index whose Roger token is revoked before the run
    expect: tuple[str, str] | None = None  # (agreement, cause regex) a failed run must name
    must_fail: bool = False  # the fault outlasts the retry budget: the run must fail, naming it
    seed: int | None = None
    env: dict[str, str] = field(default_factory=dict)


def _status(code: int, times: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "status",
        "status": code,
        "scope": "700001",
        "method": "POST",
        "path": VOUCHERS,
        "times": times,
        **extra,
    }


def _random_mix(seed: int) -> Fault:
    economic = [
        {
            "kind": "status",
            "status": code,
            "probability": 0.06,
            "times": -1,
            **({"retry_after": 1} if code == 429 else {}),
        }
        for code in (429, 500, 502, 503)
    ]
    economic += [
        {"kind": "reset", "probability": 0.05, "times": -1},
        {"kind": "lost_answer", "method": "POST", "probability": 0.15, "times": -1},
        {"kind": "lost_answer", "method": "POST", "path": ATTACHMENT, "probability": 0.3, "times": -1},
    ]
    roger = [
        {"kind": "status", "status": 503, "probability": 0.08, "times": -1},
        {"kind": "reset", "probability": 0.05, "times": -1},
        {"kind": "page_fail", "probability": 0.2, "times": -1},
    ]
    return Fault(f"random mix (seed {seed})", economic, roger, seed=seed)


FAULTS = [
    Fault("e-conomic 429 + Retry-After", [_status(429, 2, retry_after=1)]),
    Fault("e-conomic 500", [_status(500, 2)]),
    Fault("e-conomic 502", [{**_status(502, 3), "method": "*", "path": ""}]),
    Fault("e-conomic 503 beyond the retries", [_status(503, 8)], expect=("agr_0001", r"503"), must_fail=True),
    Fault(
        "e-conomic slow (3 s > 2 s timeout)",
        [{"kind": "slow", "delay": 3, "scope": "700001", "method": "POST", "path": VOUCHERS, "times": 1}],
    ),
    Fault(
        "e-conomic drips its answer (deadline)",
        [{"kind": "drip", "delay": 0.02, "scope": "700001", "method": "POST", "path": VOUCHERS, "times": 1}],
    ),
    Fault(
        "e-conomic junk answer, voucher POST",
        [{"kind": "junk", "scope": "700001", "method": "POST", "path": VOUCHERS, "times": 1}],
        expect=("agr_0001", r"lost answer"),
        must_fail=True,
    ),
    Fault(
        "e-conomic reset before processing",
        [{"kind": "reset", "scope": "700001", "method": "POST", "path": VOUCHERS, "times": 1}],
    ),
    Fault(
        "e-conomic lost answer, voucher POST",
        [{"kind": "lost_answer", "scope": "700001", "method": "POST", "path": VOUCHERS, "times": 1}],
    ),
    Fault(
        "e-conomic lost answer, attachment POST",
        [{"kind": "lost_answer", "scope": "700001", "method": "POST", "path": ATTACHMENT, "times": 1}],
    ),
    Fault(
        "e-conomic lost answers beyond the retries",
        [{"kind": "lost_answer", "scope": "700002", "method": "POST", "path": VOUCHERS, "times": 4}],
        expect=("agr_0002", r"connection lost|no answer"),
        must_fail=True,
    ),
    Fault(
        "Roger page_fail mid-walk",
        roger=[{"kind": "page_fail", "scope": "cmp_0001", "times": 4}],
        expect=("agr_0001", r"500|internal_error"),
        must_fail=True,
    ),
    Fault("Roger malformed bill", roger=[{"kind": "malformed", "scope": "cmp_0002", "times": 1}]),
    Fault("Roger token revoked between runs", revoke_roger=3, expect=("agr_0003", r"token rejected"), must_fail=True),
    _random_mix(20261127),
]
POSTGRES_SUBSET = {"e-conomic lost answer, voucher POST", "e-conomic lost answers beyond the retries"}


def _run_fault(n: int, fault: Fault, roger, economic, db: str) -> tuple[dict[str, Any], list[str]]:
    day = f"2026-12-{n + 1:02d}"
    bills = {i: add_bills(roger, i, day, BILLS_PER_AGREEMENT) for i in AGREEMENTS}
    disarm(economic, fault.seed)
    disarm(roger, fault.seed)
    for rule in fault.economic:
        arm(economic, **rule)
    for rule in fault.roger:
        arm(roger, **rule)
    if fault.revoke_roger:
        control(roger, "POST", "revoke", {"company_id": fault.revoke_roger})
    problems: list[str] = []

    first = run_bills(window(day))
    shot = len(fired(economic)) + len(fired(roger))
    disarm(economic)
    disarm(roger)
    after_first = check(roger, economic, bills, final=first.state == "success")
    problems += [f"after the faulty run: {p}" for p in after_first.problems]
    if fault.economic or fault.roger:
        problems += [] if shot else ["the fault never fired"]
    if first.state != "success":
        if not first.failures:
            problems.append("the run failed but its report names no agreement")
        for aid, message in first.failures.items():
            if not message.strip():
                problems.append(f"{aid} failed without a cause")
        if fault.expect:
            aid, cause = fault.expect
            if aid not in first.failures or not re.search(cause, first.failures[aid]):
                problems.append(f"the failed run should name {aid} and /{cause}/: {first.failures}")
    elif fault.must_fail:
        problems.append("the run should have failed (the fault outlasts the retry budget)")

    if fault.revoke_roger:  # the accountant restores the token; then a plain retry
        control(roger, "POST", "unrevoke", {"company_id": fault.revoke_roger})
    retry = run_bills(window(day))
    final = check(roger, economic, bills, final=True)
    problems += [f"after the retry: {p}" for p in final.problems]
    if retry.state != "success":
        problems.append(f"the retry run failed: {retry.failures}")
    row = {
        "fault": fault.name,
        "db": db,
        "first run": first.state + (f" ({', '.join(first.failures)})" if first.failures else ""),
        "retry": retry.state,
        "bills": final.bills,
        "booked": final.booked,
        "duplicates": max(after_first.duplicates, final.duplicates) + after_first.foreign + final.foreign,
        "lost": final.lost,
    }
    return row, problems


def test_exactly_once_under_each_fault(project_db, airflow_db, monkeypatch):
    db = "postgres" if project_db.startswith("postgresql") else "sqlite"
    for name, value in {**FAST_RETRIES, "ROGER_ECONOMIC_ROGER_PAGE_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    roger, economic = local.start_sandboxes(agreements=3, bills=4)
    try:
        load_file(ROOT / "config" / "agreements.example.yaml")
        run_master_data()
        faults = [f for f in FAULTS if db == "sqlite" or f.name in POSTGRES_SUBSET or f.seed is not None]
        rows, problems = [], {}
        for n, fault in enumerate(faults):
            row, found = _run_fault(n, fault, roger, economic, db)
            rows.append(row)
            if found:
                problems[fault.name] = found
        print_matrix(rows)
    finally:
        roger.stop()
        economic.stop()
    for row in rows:
        assert row["duplicates"] == 0 and row["lost"] == 0, row
        assert row["retry"] == "success", row
    assert not problems, problems
