"""Accounting years and periods: which year an entry date falls in, and whether it may.

A date with no year, in a closed year or in a barred period follows the
agreement's closed-period policy: ``quarantine`` (say which date and why) or
``next_open_date`` (the earliest later date in an open period of an open year).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any


@dataclass(frozen=True)
class Placement:
    date: date | None  # the date to book on (moved when the policy allowed it)
    year: str | None
    problem: str | None  # why the original date could not be used (None: it could)
    moved: bool = False


def _periods(year: dict[str, Any]) -> list[dict[str, Any]]:
    """The year's periods, when master data holds them (e-conomic's answer only links to them)."""
    periods = year.get("periods")
    return periods if isinstance(periods, list) else []


class Calendar:
    def __init__(self, years: list[dict[str, Any]]) -> None:
        self.years = sorted(
            (
                (
                    date.fromisoformat(y["fromDate"]),
                    date.fromisoformat(y["toDate"]),
                    y["year"],
                    bool(y.get("closed")),
                    [
                        (
                            date.fromisoformat(p["fromDate"]),
                            date.fromisoformat(p["toDate"]),
                            bool(p.get("barred") or p.get("closed")),
                        )
                        for p in _periods(y)
                    ],
                )
                for y in years
            ),
            key=lambda t: t[0],
        )

    def why_not(self, day: date) -> tuple[str | None, str | None]:
        """(year, problem) for booking on ``day``; problem is None when it is open."""
        for start, end, year, closed, periods in self.years:
            if start <= day <= end:
                if closed:
                    return year, f"{day} is in closed accounting year {year}"
                for p_start, p_end, barred in periods:
                    if p_start <= day <= p_end and barred:
                        return year, f"{day} is in a barred period ({p_start}..{p_end}) of {year}"
                return year, None
        return None, f"{day} is in no accounting year"

    def next_open(self, day: date) -> tuple[date, str] | None:
        for start, end, year, closed, periods in self.years:
            if end < day or closed:
                continue
            candidate = max(day, start)
            while candidate <= end:
                blocked = next(
                    (p_end for p_start, p_end, barred in periods if barred and p_start <= candidate <= p_end), None
                )
                if blocked is None:
                    return candidate, year
                candidate = blocked + timedelta(days=1)
        return None

    def place(self, day: date, policy: str) -> Placement:
        year, problem = self.why_not(day)
        if problem is None:
            return Placement(day, year, None)
        if policy == "next_open_date":
            found = self.next_open(day)
            if found is not None:
                return Placement(found[0], found[1], problem, moved=True)
            problem += " and no later open period exists"
        return Placement(None, year, problem)
