"""Manual runs over overlapping date ranges (a backfill by hand) book each bill exactly once."""

from __future__ import annotations

import pytest

from roger_economic.config import load_file
from tests.integration.helpers import ROOT, economic_state, ledger, live_entries, run_dags, staged_states


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_overlapping_ranges_and_one_agreement_alone(project_db, airflow_db, sandboxes):
    _roger, economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")
    # the sandbox's bills changed between 2026-11-19 and 2026-11-25
    dry = run_dags({"from_date": "2026-11-19", "to_date": "2026-11-22", "agreements": ["agr_0001"], "dry_run": True})
    assert dry.state == "success"
    assert economic_state(economic, 1)["vouchers"] == []  # a dry run posts nothing
    assert (
        run_dags(
            {"from_date": "2026-11-19", "to_date": "2026-11-22", "agreements": ["agr_0001"]}, master_data=False
        ).state
        == "success"
    )
    first = {p.bill_id for p in ledger("agr_0001") if p.status == "posted"}
    assert first and not ledger("agr_0002"), "only the named agreement runs"
    assert run_dags({"from_date": "2026-11-21", "to_date": "2026-11-26"}, master_data=False).state == "success"
    assert run_dags({"from_date": "2026-11-01", "to_date": "2026-11-26"}, master_data=False).state == "success"
    for i, aid in ((1, "agr_0001"), (2, "agr_0002")):
        entries = live_entries(economic_state(economic, i))
        assert entries and max(entries.values()) == 1, f"{aid}: an entry was booked twice"
        booked = {b for b, s in staged_states(aid).items() if s == "booked"}
        assert {b for b, _kind in entries} == booked
