"""Reading Roger's bill feed is bounded, against the real Roger sandbox (issue 14.5, the Roger side).

A cursor that repeats (a feed that loops) or more pages than ``ROGER_ECONOMIC_ROGER_MAX_PAGES`` (a feed
that never ends) fail THAT agreement with a clear message while the others of its group go on; the
bills of the pages read before are staged (page by page), and its watermark stays where it was.
"""

from __future__ import annotations

from typing import Any

from roger_economic import pipeline
from tests.faults.helpers import GOOD_BILL as GOOD
from tests.faults.helpers import add_bills, arm, endpoints, fired
from tests.integration.helpers import agreement_status, staged_states

IDS = ["agr_0001", "agr_0002"]


def _extract(day: str, run_id: str) -> dict[str, Any]:
    window = pipeline.Window(f"{day}T00:00:00Z", f"{day}T23:59:59Z")
    return pipeline.extract(IDS, window, endpoints(), run_id)


def test_a_repeating_cursor_fails_its_agreement_and_the_others_go_on(demo, monkeypatch):
    roger, _economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_ROGER_PAGE_SIZE", "2")
    day = "2026-12-13"
    ids = add_bills(roger, 1, day, 6, issue_date=day, **GOOD)
    others = add_bills(roger, 2, day, 3, issue_date=day, **GOOD)
    arm(roger, kind="repeat_cursor", scope="cmp_0001", times=50)  # the old walk followed it 50 times

    result = _extract(day, "night-repeat")

    assert result["agr_0001"]["outcome"] == "failed"
    assert "next_cursor it had given before" in result["agr_0001"]["message"]
    assert len(fired(roger)) == 1  # given once, recognised at once
    assert sorted(staged_states("agr_0001")) == sorted(ids[:4])  # the two pages read, staged
    assert result["agr_0002"]["outcome"] == "ok" and sorted(staged_states("agr_0002")) == sorted(others)
    assert agreement_status("agr_0001") is None or agreement_status("agr_0001").extracted_until is None
    assert agreement_status("agr_0002").extracted_until == f"{day}T23:59:59Z"


def test_a_feed_that_never_ends_fails_its_agreement_at_the_page_cap(demo, monkeypatch):
    roger, _economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_ROGER_PAGE_SIZE", "2")
    monkeypatch.setenv("ROGER_ECONOMIC_ROGER_MAX_PAGES", "5")
    day = "2026-12-14"
    ids = add_bills(roger, 1, day, 4, issue_date=day, **GOOD)
    others = add_bills(roger, 2, day, 3, issue_date=day, **GOOD)
    arm(roger, kind="endless", scope="cmp_0001", times=40)  # the old walk read 40 pages and more

    result = _extract(day, "night-endless")

    assert result["agr_0001"]["outcome"] == "failed"
    assert "more than 5 pages (ROGER_ECONOMIC_ROGER_MAX_PAGES)" in result["agr_0001"]["message"]
    assert len(fired(roger)) == 5
    assert sorted(staged_states("agr_0001")) == sorted(ids)
    assert result["agr_0002"]["outcome"] == "ok" and sorted(staged_states("agr_0002")) == sorted(others)
