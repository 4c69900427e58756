"""Quarantine that releases itself.

Every run re-judges the open bills. A rule that fails for the first time opens
a record (with the offending value); one that still fails is touched; one that
now passes is released with the time and the reason, and the bill goes on to
be booked in the same run: nobody has to press a button.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from roger_economic import states
from roger_economic.db import models
from roger_economic.model import BillOutcome
from roger_economic.posting.work import LOADER_RULES
from roger_economic.states import BillState

NO_LONGER_TO_BOOK = (BillState.WAITING, BillState.WITHDRAW)


def record(sess: Session, outcomes: list[BillOutcome], run_id: str) -> dict[str, int]:
    counts = {"opened": 0, "released": 0}
    if not outcomes:
        return counts
    now = datetime.now(UTC)
    agreement_ids = sorted({o.agreement_id for o in outcomes})
    open_rows: dict[tuple[str, str], list[models.Quarantine]] = {}
    for row in sess.scalars(
        select(models.Quarantine).where(
            models.Quarantine.agreement_id.in_(agreement_ids), models.Quarantine.released_at.is_(None)
        )
    ):
        open_rows.setdefault((row.agreement_id, row.bill_id), []).append(row)
    # (agreement, bill, version judged): a newer version staged meanwhile by an overlapping run keeps its
    # state "new", so that it is judged in turn instead of being carried along as this version's outcome
    new_states: dict[BillState, list[tuple[str, str, int]]] = defaultdict(list)
    opened: list[dict] = []
    for outcome in outcomes:
        key = (outcome.agreement_id, outcome.bill_id)
        failing = {(f.rule, f.entry): f for f in outcome.findings}
        for row in open_rows.get(key, []):
            finding = failing.pop((row.rule, row.entry_kind), None)
            if finding is None and row.rule in LOADER_RULES and outcome.state not in NO_LONGER_TO_BOOK:
                continue  # e-conomic's refusal: released by the load that gets the entry in, not by validation
            if finding is None:
                row.released_at = now
                row.release_reason = (
                    f"bill no longer to book ({outcome.state})"
                    if outcome.state in NO_LONGER_TO_BOOK
                    else f"rule {row.rule} passes since run {run_id}"
                )
                if row.severity == "stop":
                    counts["released"] += 1
            else:
                row.last_seen, row.value, row.message, row.bill_version = (
                    now,
                    finding.value,
                    finding.message,
                    (outcome.version or row.bill_version),
                )
        for finding in failing.values():
            opened.append(
                {
                    "agreement_id": outcome.agreement_id,
                    "bill_id": outcome.bill_id,
                    "bill_version": outcome.version or 0,
                    "entry_kind": finding.entry,
                    "rule": finding.rule,
                    "severity": finding.severity,
                    "value": finding.value,
                    "message": finding.message,
                    "first_seen": now,
                    "last_seen": now,
                    "run_id": run_id,
                }
            )
            if finding.severity == "stop":
                counts["opened"] += 1
        new_states[BillState(outcome.state)].append((*key, outcome.version if outcome.version is not None else -1))
    if opened:  # a Core insert: the ORM's bulk insert splits rows by which values are None (a statement each)
        sess.execute(insert(cast(Table, models.Quarantine.__table__)), opened)
    for state, keys in new_states.items():  # one UPDATE per state and 500 bills, across the group's agreements
        states.move(sess, keys, state, since=states.JUDGEABLE)
    return counts
