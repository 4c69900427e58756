"""Shared by the fault tests: arming faults, running the bills DAG, and the exactly-once invariants.

The invariants are what an accountant checks after any run, faulty or not:
every bill of the window is booked exactly once, or quarantined with a reason,
waiting, or withdrawn; no journal holds an entry twice (per bill id and entry
type) or a bill of another agreement; no voucher carries its PDF twice; the
ledger has no row stuck in ``posting`` and every ``posted`` row's entry exists.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import select

from roger_economic import report
from roger_economic.db import models, session
from sandboxes import world
from tests.integration.helpers import ROOT, economic_state, live_entries

# a bill every rule accepts on the demo agreements (fields only; ids, dates and vendor come from add_bills)
GOOD_BILL = {
    "status": "UPCOMING",
    "deleted": False,
    "document_type": "bill",
    "currency": "DKK",
    "amount": "125.00",
    "vat_amount": "25.00",
    "category_id": "cat_office",
    "payment": None,
}
AGREEMENTS = {1: "agr_0001", 2: "agr_0002", 3: "agr_0003"}
FINAL_STATES = {"booked", "quarantined", "waiting", "withdraw", "withdrawn"}

# Small retry delays and a short client timeout keep a faulty run to seconds (read when a policy is made).
FAST_RETRIES = {
    "ROGER_ECONOMIC_HTTP_BASE_DELAY": "0.05",
    "ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS": "4",
    "ROGER_ECONOMIC_HTTP_BUDGET": "20",
    "ROGER_ECONOMIC_HTTP_TIMEOUT": "2",
}


# ---------------------------------------------------------------------------- sandboxes


def control(sandbox, method: str, name: str, data: Any = None) -> Any:
    return sandbox.control(method, name, data)


def arm(sandbox, **rule: Any) -> None:
    control(sandbox, "POST", "faults", rule)


def disarm(sandbox, seed: int | None = None) -> None:
    control(sandbox, "DELETE", "faults", {"seed": seed} if seed is not None else {})


def fired(sandbox) -> list[dict[str, Any]]:
    return control(sandbox, "GET", "faults")["log"]


def add_bills(roger, i: int, day: str, count: int, **fields: Any) -> list[str]:
    """``count`` fresh bills of agreement ``i`` changed on ``day`` (one window per fault); their ids."""
    ids = []
    for n in range(count):
        bill = {"updated_at": f"{day}T10:{n // 60:02d}:{n % 60:02d}Z", **fields}
        ids.append(control(roger, "POST", "bills/add", {"company_id": world.company_id(i), "bill": bill})["id"])
    return ids


def state_of(economic, i: int) -> dict[str, Any]:
    return economic_state(economic, i)


def voucher_posts(economic, i: int) -> int:
    return state_of(economic, i)["counters"].get("vouchers", {}).get("POST", 0)


def all_roger_ids(roger, i: int) -> set[str]:
    with urllib.request.urlopen(
        f"{roger.base_url}/_control/bills?company_id={world.company_id(i)}", timeout=30
    ) as resp:
        return {b["id"] for b in json.loads(resp.read())["data"]}


# ---------------------------------------------------------------------------- the DAG


@cache
def _bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors
    return bag


def bills_dag():
    """The bills DAG with Airflow's own task retries off, so that a failed run shows as failed at once."""
    dag = _bag().dags["roger_bills_to_economic"]
    for task in dag.tasks:
        task.retries = 0
    return dag


def run_master_data() -> None:
    assert _bag().dags["roger_master_data"].test().state == "success", "master data run failed"


@dataclass
class Run:
    state: str
    run_id: str
    report: dict[str, Any]

    @property
    def failures(self) -> dict[str, str]:
        """Agreement → its problems, for every agreement the run did not complete."""
        return {a["agreement"]: " / ".join(a["problems"]) for a in self.report["agreements"] if a["outcome"] != "ok"}


def run_bills(conf: dict[str, Any]) -> Run:
    dr = bills_dag().test(run_conf=conf)
    path = report.REPORTS / (re.sub(r"[^A-Za-z0-9_.-]", "_", dr.run_id) + ".json")  # as report.save names it
    rep = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"agreements": []}
    return Run(str(dr.state), dr.run_id, rep)


def window(day: str) -> dict[str, Any]:
    return {"from_date": day, "to_date": day}


# ---------------------------------------------------------------------------- invariants


@dataclass
class Check:
    bills: int = 0
    booked: int = 0
    duplicates: int = 0
    lost: int = 0
    foreign: int = 0
    problems: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and self.foreign == 0


def check(roger, economic, bills: dict[int, list[str]], final: bool = True) -> Check:
    """The invariants over the agreements' journals and the given bills (``final``: nothing may still wait)."""
    out = Check()
    roger_ids = {i: all_roger_ids(roger, i) for i in AGREEMENTS}
    for i, aid in AGREEMENTS.items():
        state = state_of(economic, i)
        entries = live_entries(state)
        for (bill, kind), n in entries.items():
            if n > 1:
                out.duplicates += n - 1
                out.problems.append(f"{aid}: {n} {kind} entries for {bill}")
        others = set().union(*(ids for j, ids in roger_ids.items() if j != i))
        foreign = {bill for bill, _ in entries} & others
        out.foreign += len(foreign)
        out.problems += [f"{aid}: journal holds {b} of another agreement" for b in sorted(foreign)]
        live_numbers = set()
        pages: dict[tuple[str, int], int] = {}
        for voucher in state["vouchers"]:
            if voucher["status"] == "deleted":
                continue
            pages[(voucher["accountingYear"], voucher["voucherNumber"])] = (voucher["attachment"] or {}).get("pages", 0)
            if (voucher["attachment"] or {}).get("pages", 0) > 1:
                out.duplicates += voucher["attachment"]["pages"] - 1
                out.problems.append(
                    f"{aid}: voucher {voucher['voucherNumber']} has {voucher['attachment']['pages']} attachment pages"
                )
            for entry in voucher["entries"]:
                if entry.get("status") != "deleted":
                    live_numbers.add(entry["journalEntryNumber"])
        with session() as sess:
            rows = list(sess.scalars(select(models.Posting).where(models.Posting.agreement_id == aid)))
            staged = dict(
                sess.execute(
                    select(models.StagedBill.bill_id, models.StagedBill.state).where(
                        models.StagedBill.agreement_id == aid
                    )
                ).all()
            )
            reasons = {
                q.bill_id: q.message
                for q in sess.scalars(
                    select(models.Quarantine).where(
                        models.Quarantine.agreement_id == aid,
                        models.Quarantine.released_at.is_(None),
                        models.Quarantine.severity == "stop",
                    )
                )
            }
        posted_kinds = Counter()
        for row in rows:
            if row.status == "posting" and final:
                out.lost += 1
                out.problems.append(f"{aid}: ledger row of {row.bill_id} left 'posting'")
            if row.status == "posted":
                posted_kinds[(row.bill_id, row.entry_kind)] += 1
                if row.entry_number not in live_numbers and not _withdrawn(row, staged):
                    out.lost += 1
                    out.problems.append(
                        f"{aid}: ledger says {row.entry_kind} of {row.bill_id} posted as entry "
                        f"{row.entry_number}, e-conomic does not have it"
                    )
                if final and row.entry_kind == "invoice" and row.payload.get("has_document"):
                    got = pages.get((row.accounting_year, row.voucher_number), 0)
                    if row.attachment != "too_large" and got != 1:
                        out.lost += 1
                        out.problems.append(
                            f"{aid}: invoice of {row.bill_id} has {got} attachment pages (ledger: {row.attachment})"
                        )
        for bill in bills.get(i, []):
            out.bills += 1
            st = staged.get(bill)
            if st == "booked":
                out.booked += 1
                if entries[(bill, "supplierInvoice")] != 1:
                    out.lost += 1
                    out.problems.append(f"{aid}: {bill} booked but has {entries[(bill, 'supplierInvoice')]} invoices")
            elif st == "quarantined":
                if not reasons.get(bill):
                    out.lost += 1
                    out.problems.append(f"{aid}: {bill} quarantined without a reason")
            elif st in FINAL_STATES:
                pass
            elif final:
                out.lost += 1
                out.problems.append(f"{aid}: {bill} ended in state {st!r}")
    return out


def _withdrawn(row: models.Posting, staged: dict[str, str]) -> bool:
    return staged.get(row.bill_id) in ("withdraw", "withdrawn")


def print_matrix(rows: list[dict[str, Any]]) -> str:
    cols = ("fault", "db", "first run", "retry", "bills", "booked", "duplicates", "lost")
    table = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[k]) for t in table)) for k, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in table]
    text = "\n".join(lines)
    print("\nfault matrix\n" + text, flush=True)
    return text


# ---------------------------------------------------------------------------- the pipeline without Airflow

ALL = {"from_date": "2026-10-01", "to_date": "2026-11-26"}
SINCE, BEFORE = "2026-09-30T22:00:00Z", "2026-11-26T23:00:00Z"  # ALL as the DAG computes it


def endpoints():
    from roger_economic.credentials import Endpoints

    return Endpoints.from_env()


def prepare(agreement_ids: list[str], run_id: str = "prepare") -> None:
    """Master data, extract and validate (in process): the agreements' entries are planned, nothing posted."""
    from roger_economic import pipeline

    ep = endpoints()
    for step in (
        pipeline.refresh_master_data(agreement_ids, ep, run_id),
        pipeline.extract(agreement_ids, pipeline.Window(SINCE, BEFORE), ep, run_id),
        pipeline.validate(agreement_ids, run_id),
    ):
        assert all(r["outcome"] == "ok" for r in step.values()), step


def ledger_rows(agreement_id: str) -> list[models.Posting]:
    with session() as sess:
        return list(sess.scalars(select(models.Posting).where(models.Posting.agreement_id == agreement_id)))


def posted_entries(agreement_id: str) -> int:
    return sum(1 for r in ledger_rows(agreement_id) if r.status == "posted")
