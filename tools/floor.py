"""The floor: the bills run's HTTP calls, replayed by a bare script (no Airflow, no pandas, no GX, no database).

    .venv/bin/python tools/floor.py PLAN.json [--threads 4]

``tools/bench.py`` writes PLAN.json after the first bills run: per agreement the Roger
token and window (the bill pages are read the same way, ``limit=500`` with the cursor),
the supplier lookups and creations, the voucher batches with the bodies the run posted
(one POST per journal and batch, same vouchers, suppliers renumbered to the floor's
own), the PDFs to download and upload, and the number of other e-conomic reads. The
e-conomic calls go to a *second*, fresh e-conomic sandbox so the run's state stays as
it was; the Roger calls go to the same Roger sandbox.

One urllib3 connection pool per agreement and service (the pipeline's client uses urllib3
too), ``--threads`` agreements at a time (the pipeline's ``ROGER_ECONOMIC_LOAD_THREADS``, or with
latency as many as the project may run at once), the agreements with the most calls first (the best
order there is, so that the floor is a floor). A 429 is waited out as its ``Retry-After`` asks, as the
pipeline does; against a sandbox with latency the floor's calls take the run's calls' latencies.
``--repeat N`` replays N times with fresh idempotency keys and reports the fastest (a floor
measured while the machine settles after a run is not a floor). Prints one JSON line:
``{"seconds", "all_seconds", "calls": {...}, "errors": [...], "per_agreement": {id: seconds}}``
(per agreement: the fastest replay's).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import urllib3


class Service:
    """One agreement's connections to one service, its headers on every call."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.pool = urllib3.PoolManager(maxsize=2)
        self.headers = headers

    def call(
        self,
        what: str,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bytes:
        if params:
            url = f"{url}?{urlencode(params)}"
        all_headers = {**self.headers, **(headers or {})}
        if fields:
            body, all_headers["Content-Type"] = urllib3.encode_multipart_formdata(fields)
        for _attempt in range(6):
            resp = self.pool.request(method, url, body=body, headers=all_headers, retries=False, redirect=False)
            if resp.status != 429:
                break
            time.sleep(float(resp.headers.get("Retry-After") or 1))
        if resp.status >= 400:
            raise RuntimeError(f"{what}: HTTP {resp.status}: {resp.data[:300]!r}")
        return resp.data

    def json(self, *args: Any, **kwargs: Any) -> Any:
        return json.loads(self.call(*args, **kwargs))

    def close(self) -> None:
        self.pool.clear()


def replay_agreement(
    plan: dict[str, Any],
    roger_base: str,
    economic_base: str,
    app_secret: str,
    calls: Counter,
    lock: threading.Lock,
    suffix: str = "",
) -> None:
    local: Counter = Counter()
    roger = Service({"Authorization": f"Bearer {plan['roger_token']}", "Accept": "application/json"})
    eco = Service(
        {"X-AppSecretToken": app_secret, "X-AgreementGrantToken": plan["economic_token"], "Accept": "application/json"}
    )
    company = f"{roger_base.rstrip('/')}/companies/{plan['company_id']}"
    try:
        # extract: the bill pages, oldest change first
        params: dict[str, Any] = {"limit": 500}
        if plan.get("since"):
            params["updated_since"] = plan["since"]
        if plan.get("before"):
            params["updated_before"] = plan["before"]
        cursor = None
        while True:
            page = roger.json(
                "bills page", "GET", f"{company}/bills", params={**params, **({"cursor": cursor} if cursor else {})}
            )
            local["roger_pages"] += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
        # other e-conomic reads the run made (lookups, drafts)
        for _ in range(plan.get("supplier_lookups", 0)):
            eco.call(
                "supplier lookup",
                "GET",
                f"{economic_base}/suppliers",
                params={"skippages": 0, "pagesize": 1000, "filter": "name$eq:floor"},
            )
            local["economic_suppliers_get"] += 1
        for _ in range(plan.get("entry_reads", 0)):
            eco.call(
                "entries read",
                "GET",
                f"{economic_base}/journals/{plan['invoice_journal']}/entries",
                params={"skippages": 0, "pagesize": 1000},
            )
            local["economic_entries_get"] += 1
        for _ in range(plan.get("other_reads", 0)):
            eco.call("read", "GET", f"{economic_base}/self")
            local["economic_reads_get"] += 1
        # suppliers created by the run: same bodies, renumbered
        renumber: dict[int, int] = {}
        for old, body in plan.get("suppliers", []):
            created = eco.json(
                "supplier",
                "POST",
                f"{economic_base}/suppliers",
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            renumber[int(old)] = created["supplierNumber"]
            local["economic_suppliers_post"] += 1
        # vouchers: one POST per batch, then the PDFs of that batch's invoices
        uploads: list[tuple[int, str, int, str]] = []
        for batch in plan.get("batches", []):
            vouchers = batch["vouchers"]
            if renumber:
                for voucher in vouchers:
                    for items in voucher.get("entries", {}).values():
                        for item in items:
                            sup = item.get("supplier")
                            if isinstance(sup, dict) and sup.get("supplierNumber") in renumber:
                                sup["supplierNumber"] = renumber[sup["supplierNumber"]]
            answers = eco.json(
                "vouchers",
                "POST",
                f"{economic_base}/journals/{batch['journal']}/vouchers",
                body=json.dumps(vouchers).encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": batch["key"] + suffix},
            )
            local["economic_vouchers_post"] += 1
            for answer, bill_id in zip(answers, batch["attach"], strict=True):
                if bill_id:
                    year = answer["accountingYear"]["year"]
                    uploads.append((batch["journal"], year, answer["voucherNumber"], bill_id))
        for journal, year, number, bill_id in uploads:
            pdf = roger.call("document", "GET", f"{company}/bills/{bill_id}/document")
            local["roger_documents"] += 1
            year_path = year.replace("/", "_6_")
            eco.call(
                "attachment",
                "POST",
                f"{economic_base}/journals/{journal}/vouchers/{year_path}-{number}/attachment/file",
                fields={"file": (f"{bill_id}.pdf", pdf, "application/pdf")},
                headers={"Idempotency-Key": f"fa-{plan['id']}-{journal}-{year}-{number}{suffix}"},
            )
            local["economic_attachments_post"] += 1
    finally:
        roger.close()
        eco.close()
        with lock:
            calls.update(local)


def run(plan: dict[str, Any], threads: int, suffix: str = "") -> dict[str, Any]:
    calls: Counter = Counter()
    lock = threading.Lock()
    errors: list[str] = []
    took: dict[str, float] = {}

    def one(agreement: dict[str, Any]) -> None:
        begun = time.perf_counter()
        try:
            replay_agreement(
                agreement, plan["roger_base_url"], plan["economic_base_url"], plan["app_secret"], calls, lock, suffix
            )
        except Exception as exc:  # reported; the others go on
            errors.append(f"{agreement['id']}: {exc}")
        took[agreement["id"]] = round(time.perf_counter() - begun, 3)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, sorted(plan["agreements"], key=_calls, reverse=True)))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "calls": dict(calls), "errors": errors, "per_agreement": took}


def _calls(agreement: dict[str, Any]) -> int:
    """About how many calls an agreement's replay makes (its PDFs count twice: download and upload)."""
    attachments = sum(1 for batch in agreement.get("batches", []) for bill in batch["attach"] if bill)
    return len(agreement.get("batches", [])) + 2 * attachments + len(agreement.get("suppliers", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plan")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--repeat", type=int, default=1, help="replay N times (fresh idempotency keys each time); seconds = the fastest"
    )
    args = parser.parse_args(argv)
    with open(args.plan, encoding="utf-8") as fh:
        plan = json.load(fh)
    results = [run(copy.deepcopy(plan), args.threads, f"-r{i}" if i else "") for i in range(max(1, args.repeat))]
    fastest = min(results, key=lambda r: r["seconds"])
    result = {
        **results[0],
        "per_agreement": fastest["per_agreement"],
        "seconds": fastest["seconds"],
        "all_seconds": [round(r["seconds"], 2) for r in results],
        "errors": [e for r in results for e in r["errors"]],
    }
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
