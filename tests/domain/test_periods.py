"""Accounting years and periods (docs/booking-rules.md, "Accounting years and periods", "next_open_date").

The voucher's year is the one whose fromDate..toDate holds the entry date
(split years like ``2024/2025`` included). A date with no year, in a closed
year or in a barred period is quarantined, or under ``next_open_date`` moved
to the earliest later date in an open period of an open year (none: quarantine).
Each entry's date moves on its own; ``dueDate`` never moves.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from roger_economic import transform, validation
from roger_economic.periods import Calendar, Placement
from roger_economic.prepare import prepare
from tests import factories as f

CALENDAR_YEARS = [
    {"year": "2024", "fromDate": "2024-01-01", "toDate": "2024-12-31", "closed": True},
    {
        "year": "2025",
        "fromDate": "2025-01-01",
        "toDate": "2025-12-31",
        "periods": [
            {"fromDate": "2025-03-01", "toDate": "2025-03-31", "barred": True},
            {"fromDate": "2025-04-01", "toDate": "2025-04-30", "closed": True},  # e-conomic's own word for a period
            {"fromDate": "2025-05-01", "toDate": "2025-05-31"},
        ],
    },
    {
        "year": "2026",
        "fromDate": "2026-01-01",
        "toDate": "2026-12-31",
        "periods": [
            {"fromDate": "2026-12-01", "toDate": "2026-12-31", "barred": True},
        ],
    },
    {"year": "2027", "fromDate": "2027-01-01", "toDate": "2027-12-31", "closed": True},
]
SPLIT_YEARS = [
    {"year": "2024/2025", "fromDate": "2024-07-01", "toDate": "2025-06-30", "closed": True},
    {"year": "2025/2026", "fromDate": "2025-07-01", "toDate": "2026-06-30"},
    {"year": "2026/2027", "fromDate": "2026-07-01", "toDate": "2027-06-30"},
]
Q, NEXT = "quarantine", "next_open_date"


def d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


PLACES = [
    # day, policy -> booked on, year, problem, moved
    pytest.param(CALENDAR_YEARS, "2025-06-15", Q, "2025-06-15", "2025", None, False, id="open year, open period"),
    pytest.param(CALENDAR_YEARS, "2025-01-01", Q, "2025-01-01", "2025", None, False, id="first day of the year"),
    pytest.param(
        CALENDAR_YEARS,
        "2024-05-01",
        Q,
        None,
        "2024",
        "2024-05-01 is in closed accounting year 2024",
        False,
        id="closed year, quarantine",
    ),
    pytest.param(
        CALENDAR_YEARS,
        "2024-05-01",
        NEXT,
        "2025-01-01",
        "2025",
        "2024-05-01 is in closed accounting year 2024",
        True,
        id="closed year, moved to next year",
    ),
    pytest.param(
        CALENDAR_YEARS,
        "2025-03-10",
        Q,
        None,
        "2025",
        "2025-03-10 is in a barred period (2025-03-01..2025-03-31) of 2025",
        False,
        id="barred period, quarantine",
    ),
    pytest.param(
        CALENDAR_YEARS,
        "2025-03-10",
        NEXT,
        "2025-05-01",
        "2025",
        "2025-03-10 is in a barred period (2025-03-01..2025-03-31) of 2025",
        True,
        id="barred then closed period, moved past both",
    ),
    pytest.param(
        CALENDAR_YEARS,
        "2025-04-30",
        Q,
        None,
        "2025",
        "2025-04-30 is in a barred period (2025-04-01..2025-04-30) of 2025",
        False,
        id="closed period",
    ),
    pytest.param(
        CALENDAR_YEARS,
        "2023-06-01",
        NEXT,
        "2025-01-01",
        "2025",
        "2023-06-01 is in no accounting year",
        True,
        id="before every year, moved past the closed one",
    ),
    pytest.param(
        CALENDAR_YEARS,
        "2026-12-15",
        NEXT,
        None,
        "2026",
        "2026-12-15 is in a barred period (2026-12-01..2026-12-31) of 2026 and no later open period exists",
        False,
        id="no later open period: quarantine even under next_open_date",
    ),
    pytest.param(
        CALENDAR_YEARS, "2028-01-01", Q, None, None, "2028-01-01 is in no accounting year", False, id="no year at all"
    ),
    pytest.param(SPLIT_YEARS, "2026-03-05", Q, "2026-03-05", "2025/2026", None, False, id="split year 2025/2026"),
    pytest.param(SPLIT_YEARS, "2026-07-01", Q, "2026-07-01", "2026/2027", None, False, id="first day of 2026/2027"),
    pytest.param(
        SPLIT_YEARS,
        "2025-06-30",
        Q,
        None,
        "2024/2025",
        "2025-06-30 is in closed accounting year 2024/2025",
        False,
        id="last day of closed split year",
    ),
    pytest.param(
        SPLIT_YEARS,
        "2025-01-15",
        NEXT,
        "2025-07-01",
        "2025/2026",
        "2025-01-15 is in closed accounting year 2024/2025",
        True,
        id="closed split year, moved to July",
    ),
]


@pytest.mark.parametrize(("years", "day", "policy", "on", "year", "problem", "moved"), PLACES)
def test_date_is_placed_in_an_open_year(
    years: list, day: str, policy: str, on: str | None, year: str | None, problem: str | None, moved: bool
) -> None:
    assert Calendar(years).place(d(day), policy) == Placement(d(on), year, problem, moved)


# ---------------------------------------------------------------------------- through the whole transform


def snapshots_with_october_2026_barred() -> dict[str, Any]:
    snaps = f.snapshots()
    for year in snaps["accounting_years"]:
        if year["year"] == "2026":
            year["periods"] = [{"fromDate": "2026-10-01", "toDate": "2026-10-31", "barred": True}]
    return snaps


PAID_IN_NOVEMBER = f.paid(id="bill_issued_in_barred_october", paid_date="2026-11-03")
PAID_IN_OCTOBER = f.paid(
    id="bill_paid_in_barred_october", issue_date="2026-09-28", due_date="2026-10-12", paid_date="2026-10-12"
)


def book(policy: str) -> dict[str, Any]:
    ctx = f.context(snapshots=snapshots_with_october_2026_barred(), closed_period_policy=policy)
    contexts = {ctx.settings.id: ctx}
    frame = prepare([(ctx.settings.id, b) for b in (PAID_IN_NOVEMBER, PAID_IN_OCTOBER)], contexts)
    entries, outcomes = transform.build(frame, validation.run(frame), contexts)
    return {
        "entries": {(e.bill_id, e.kind): (e.year, e.entry["date"], e.entry.get("dueDate")) for e in entries},
        "findings": {(x.bill_id, x.rule, x.entry, x.value) for x in (y for o in outcomes for y in o.findings)},
    }


def test_next_open_date_moves_each_entry_on_its_own_and_never_the_due_date() -> None:
    got = book(NEXT)
    assert got["entries"] == {
        ("bill_issued_in_barred_october", "invoice"): ("2026", "2026-11-01", "2026-10-20"),  # moved
        ("bill_issued_in_barred_october", "payment"): ("2026", "2026-11-03", None),  # kept
        ("bill_paid_in_barred_october", "invoice"): ("2026", "2026-09-28", "2026-10-12"),  # kept
        ("bill_paid_in_barred_october", "payment"): ("2026", "2026-11-01", None),  # moved
    }
    assert got["findings"] == set()


def test_quarantine_names_the_date_and_holds_the_payment_of_a_held_invoice() -> None:
    got = book(Q)
    assert got["entries"] == {("bill_paid_in_barred_october", "invoice"): ("2026", "2026-09-28", "2026-10-12")}
    assert got["findings"] == {
        ("bill_issued_in_barred_october", "invoice_date_open", "invoice", "2026-10-05"),
        ("bill_paid_in_barred_october", "payment_date_open", "payment", "2026-10-12"),
    }
