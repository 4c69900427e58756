"""A night whose extraction failed leaves no gap: the next run starts where the last complete one ended."""

from __future__ import annotations

import pytest

from roger_economic.config import load_file
from roger_economic.credentials import Endpoints
from roger_economic.pipeline import Window, extract
from tests.integration.helpers import ROOT, roger_bills, staged_states


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_failed_night_is_caught_up_by_the_next(project_db, sandboxes):
    roger, _economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")
    endpoints = Endpoints.from_env()
    nights = [
        Window("2026-11-10T23:00:00Z", "2026-11-19T23:00:00Z"),
        Window("2026-11-19T23:00:00Z", "2026-11-22T23:00:00Z"),
        Window("2026-11-22T23:00:00Z", "2026-11-26T23:00:00Z"),
    ]
    assert extract(["agr_0001"], nights[0], endpoints, "night-0")["agr_0001"]["outcome"] == "ok"

    roger.control("POST", "revoke", {"company_id": "cmp_0001"})
    night_1 = extract(["agr_0001", "agr_0002"], nights[1], endpoints, "night-1")
    failed = night_1["agr_0001"]
    assert failed["outcome"] == "stopped" and "token" in failed["message"]
    assert night_1["agr_0002"]["outcome"] == "ok"
    # the group's watermarks: the complete extraction advanced, the stopped one stayed where it was
    assert watermarks() == {"agr_0001": nights[0].before, "agr_0002": nights[1].before}
    roger.control("POST", "unrevoke", {"company_id": "cmp_0001"})

    assert extract(["agr_0001"], nights[2], endpoints, "night-2")["agr_0001"]["outcome"] == "ok"
    in_missed_night = {b["id"] for b in roger_bills(roger, 1) if nights[1].since <= b["updated_at"] < nights[1].before}
    assert in_missed_night, "the sandbox should have bills in the failed night's window"
    assert in_missed_night <= set(staged_states("agr_0001"))


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_a_staged_bill_changes_only_for_a_newer_version(project_db):
    """Roger's version grows by one on every change: an older or same-version copy (a repeated page, or a
    body that breaks that contract) never replaces what is staged; a newer one does, once."""
    from collections import Counter

    from sqlalchemy import select

    from roger_economic.db import models, session
    from roger_economic.steps.extract import stage

    load_file(ROOT / "config" / "agreements.example.yaml")
    bill = {
        "id": "bill_stage_1",
        "version": 2,
        "updated_at": "2026-11-20T10:00:00Z",
        "status": "UPCOMING",
        "amount": "100.00",
    }
    assert stage("agr_0001", [bill], "night-1", Counter()) == {"staged": 1}

    same_version_other_body = {**bill, "amount": None}
    older = {**bill, "version": 1, "status": "DRAFT"}
    assert stage("agr_0001", [same_version_other_body, older], "night-2", Counter()) == {"unchanged": 2}

    newer = {**bill, "version": 3, "status": "PAID"}
    assert stage("agr_0001", [bill, newer, older], "night-3", Counter()) == {"staged": 1, "unchanged": 2}
    with session() as sess:
        version, payload, run_id = sess.execute(
            select(models.StagedBill.version, models.StagedBill.payload, models.StagedBill.run_id).where(
                models.StagedBill.agreement_id == "agr_0001", models.StagedBill.bill_id == "bill_stage_1"
            )
        ).one()
    assert (version, payload, run_id) == (3, newer, "night-3")


def watermarks() -> dict[str, str | None]:
    from sqlalchemy import select

    from roger_economic.db import models, session

    with session() as sess:
        return dict(
            sess.execute(
                select(models.AgreementStatus.agreement_id, models.AgreementStatus.extracted_until).where(
                    models.AgreementStatus.agreement_id.in_(["agr_0001", "agr_0002"])
                )
            ).all()
        )


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_a_rerun_stages_nothing_page_by_page_yet_a_bill_changed_in_its_window_is_staged(project_db, sandboxes):
    """A quiet rerun of a window reads what it already holds once for the group (no transaction per page);
    a bill Roger changed meanwhile still has its new version staged, and nothing else moves."""
    from sqlalchemy import event, select

    from roger_economic.db import engine, models, session

    roger, _economic = sandboxes
    load_file(ROOT / "config" / "agreements.example.yaml")
    endpoints = Endpoints.from_env()
    night = Window("2026-11-18T23:00:00Z", "2026-11-26T23:00:00Z")
    first = extract(["agr_0001", "agr_0002"], night, endpoints, "night")
    assert first["agr_0001"]["staged"] > 0 and first["agr_0002"]["staged"] > 0

    staging: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if "staged_bills" in statement:
            staging.append(" ".join(statement.split())[:60])

    event.listen(engine(), "before_cursor_execute", count)
    try:
        rerun = extract(["agr_0001", "agr_0002"], night, endpoints, "rerun")
        assert len(staging) == 1, f"one read for the group, not one per page: {staging}"
        for aid in ("agr_0001", "agr_0002"):
            assert rerun[aid]["outcome"] == "ok"
            assert rerun[aid].get("staged", 0) == 0 and rerun[aid]["unchanged"] == first[aid]["staged"]

        in_window = [b for b in roger_bills(roger, 1) if night.since <= b["updated_at"] < night.before]
        changed = in_window[0]
        roger.control(
            "POST",
            "bills/update",
            {
                "company_id": "cmp_0001",
                "bill_id": changed["id"],
                "changes": {"description": "changed <b>meanwhile</b>"},
                "updated_at": "2026-11-25T12:00:00Z",
            },
        )
        staging.clear()
        again = extract(["agr_0001", "agr_0002"], night, endpoints, "again")
    finally:
        event.remove(engine(), "before_cursor_execute", count)
    assert again["agr_0001"]["staged"] == 1 and again["agr_0001"]["unchanged"] == first["agr_0001"]["staged"] - 1
    assert again["agr_0002"].get("staged", 0) == 0
    with session() as sess:
        version, payload, state = sess.execute(
            select(models.StagedBill.version, models.StagedBill.payload, models.StagedBill.state).where(
                models.StagedBill.agreement_id == "agr_0001", models.StagedBill.bill_id == changed["id"]
            )
        ).one()
    assert (version, payload["description"], state) == (changed["version"] + 1, "changed <b>meanwhile</b>", "new")
