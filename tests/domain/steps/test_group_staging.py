"""A group's extract stages the pages of many agreements in one transaction: each bill still ends at its
newest version, once; a page the database refuses fails its own agreement and no other; an overlapping
run's newer version is never written over; and after any of it the next page is staged as before."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from roger_economic.config import load_file
from roger_economic.db import models, session
from roger_economic.steps import extract
from roger_economic.steps.extract import GroupStaging, stage
from tests.faults.helpers import ROOT


def _bill(bill_id: Any, version: int, amount: str = "100.00") -> dict[str, Any]:
    return {
        "id": bill_id,
        "version": version,
        "updated_at": "2026-11-20T10:00:00Z",
        "status": "UPCOMING",
        "amount": amount,
    }


def _staged() -> dict[tuple[str, str], tuple[int, str]]:
    staged = models.StagedBill
    with session() as sess:
        rows = sess.execute(select(staged.agreement_id, staged.bill_id, staged.version, staged.state))
        return {(aid, bill): (version, state) for aid, bill, version, state in rows}


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class _Writes:
    """The agreements of each write, the first held until ``release()``: what is handed over meanwhile waits."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, second_raises: BaseException | None = None) -> None:
        self.agreements: list[list[str]] = []
        self.started = threading.Event()
        self._go = threading.Event()
        real = extract._stage_pages

        def write(pages, run_id, judge=None):
            first = not self.agreements
            self.agreements.append([aid for aid, _bills, _counts in pages])
            if first:
                self.started.set()
                assert self._go.wait(10)
            if len(self.agreements) == 2 and second_raises is not None:
                raise second_raises
            return real(pages, run_id, judge)

        monkeypatch.setattr(extract, "_stage_pages", write)

    def release(self) -> None:
        self._go.set()


def _group(
    monkeypatch: pytest.MonkeyPatch, most: int = extract.STAGE_TOGETHER, **writes: Any
) -> tuple[GroupStaging, _Writes]:
    """The example agreements, a group's staging, and its writes watched (the first one held)."""
    load_file(ROOT / "config" / "agreements.example.yaml")
    return GroupStaging("night-1", most=most), _Writes(monkeypatch, **writes)


def _in_threads(
    staging: GroupStaging, writes: _Writes, pages: list[tuple[str, list[dict[str, Any]]]], counts: Counter | None = None
) -> list[Any]:
    """The first page is written (and held) first; the others are handed over in order while it is; then the
    first write goes on. Each thread's counts or error, once every thread has ended."""
    out: list[Any] = [None] * len(pages)

    def one(index: int, aid: str, bills: list[dict[str, Any]]) -> None:
        try:
            out[index] = dict(staging.stage(aid, bills, Counter(counts or {})))
        except BaseException as exc:
            out[index] = exc

    threads = []
    for index, (aid, bills) in enumerate(pages):
        threads.append(threading.Thread(target=one, args=(index, aid, bills), daemon=True))
        threads[-1].start()
        if index == 0:
            _wait_for(writes.started.is_set, "the first write")
        else:
            _wait_for(lambda index=index: len(staging._waiting) == index, f"page {index} handed over")
    writes.release()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a page was never staged"
    return out


def _then_alone_as_before(staging: GroupStaging, aid: str) -> None:
    """After the writes, the hand-over is free again: a lone page is written at once, in a write of its own."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(staging.stage(aid, [_bill("bill_z", 1)], Counter())))
    thread.daemon = True
    thread.start()
    thread.join(timeout=10)
    assert result == [Counter(staged=1)]


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_pages_staged_together_keep_each_bill_s_newest_version_once(project_db, monkeypatch):
    load_file(ROOT / "config" / "agreements.example.yaml")
    stage("agr_0001", [_bill("bill_a", 2)], "night-0", Counter())  # staged before the writes are watched
    staging, writes = _group(monkeypatch)

    counts = _in_threads(
        staging,
        writes,
        [
            ("agr_0003", [_bill("bill_x", 1)]),
            ("agr_0001", [_bill("bill_a", 1), _bill("bill_b", 1)]),  # an older copy of a staged bill, a new one
            ("agr_0002", [_bill("bill_c", 1), {"id": 5, "version": 1}]),  # a record without a usable id
            ("agr_0002", [_bill("bill_c", 2)]),  # the same bill again, newer, in the same write
            ("agr_0003", [_bill("bill_a", 3)]),  # another agreement's bill of the same id
        ],
        counts=Counter(seen=7),  # what the agreement's walk counted before the page: carried on
    )

    assert writes.agreements == [["agr_0003"], ["agr_0001", "agr_0002", "agr_0002", "agr_0003"]]
    assert counts == [
        {"seen": 7, "staged": 1},
        {"seen": 7, "staged": 1, "unchanged": 1},
        {"seen": 7, "staged": 1, "malformed": 1},
        {"seen": 7, "staged": 1},
        {"seen": 7, "staged": 1},
    ]
    assert _staged() == {
        ("agr_0001", "bill_a"): (2, "new"),
        ("agr_0001", "bill_b"): (1, "new"),
        ("agr_0002", "bill_c"): (2, "new"),
        ("agr_0003", "bill_a"): (3, "new"),
        ("agr_0003", "bill_x"): (1, "new"),
    }
    _then_alone_as_before(staging, "agr_0001")


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_a_write_takes_at_most_its_share_and_the_next_page_writes_the_rest(project_db, monkeypatch):
    staging, writes = _group(monkeypatch, most=2)

    pages = [("agr_0001", [_bill(f"bill_{n}", 1)]) for n in range(5)]
    assert _in_threads(staging, writes, pages) == [{"staged": 1}] * 5

    assert writes.agreements == [["agr_0001"], ["agr_0001"] * 2, ["agr_0001"] * 2]
    assert len(_staged()) == 5
    _then_alone_as_before(staging, "agr_0002")


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_a_page_the_database_refuses_fails_only_its_own_agreement(project_db, monkeypatch):
    """Written together, the refused page would take the others down with it: each is handed back to its own
    thread and staged alone, and only the page of the agreement the database does not know fails."""
    staging, writes = _group(monkeypatch)

    counts = _in_threads(
        staging,
        writes,
        [
            ("agr_0001", [_bill("bill_a", 1)]),
            ("agr_0002", [_bill("bill_b", 1)]),
            ("agr_9999", [_bill("bill_c", 1)]),  # no such agreement: its row breaks the foreign key
            ("agr_0003", [_bill("bill_d", 1)]),
        ],
    )

    assert writes.agreements[:2] == [["agr_0001"], ["agr_0002", "agr_9999", "agr_0003"]]  # then one by one
    assert sorted(writes.agreements[2:]) == [["agr_0002"], ["agr_0003"], ["agr_9999"], ["agr_9999"], ["agr_9999"]]
    assert counts[0] == counts[1] == counts[3] == {"staged": 1}
    assert isinstance(counts[2], IntegrityError)
    assert set(_staged()) == {("agr_0001", "bill_a"), ("agr_0002", "bill_b"), ("agr_0003", "bill_d")}
    _then_alone_as_before(staging, "agr_0001")


@pytest.mark.parametrize("project_db", ["sqlite"], indirect=True)
def test_a_stopped_write_leaves_its_pages_not_staged_and_the_next_page_staged(project_db, monkeypatch):
    """The task stopped inside a write of two pages: the other page is named not staged (its agreement is not
    complete, so its watermark stays) instead of waiting for ever, and the hand-over is free again."""
    staging, writes = _group(monkeypatch, second_raises=KeyboardInterrupt())

    counts = _in_threads(
        staging,
        writes,
        [("agr_0001", [_bill("bill_a", 1)]), ("agr_0002", [_bill("bill_b", 1)]), ("agr_0003", [_bill("bill_c", 1)])],
    )

    assert writes.agreements == [["agr_0001"], ["agr_0002", "agr_0003"]]
    assert counts[0] == {"staged": 1}
    assert isinstance(counts[1], KeyboardInterrupt)  # the writer's own thread stops
    assert "staging was interrupted" in str(counts[2])
    assert set(_staged()) == {("agr_0001", "bill_a")}
    _then_alone_as_before(staging, "agr_0003")


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_a_newer_version_an_overlapping_run_staged_meanwhile_is_not_written_over(project_db):
    """Between this run's read of the staged versions and its write, another run stages version 4 of a bill this
    run holds version 3 of: version 4 stays, and so does its state (versions only move forward)."""
    load_file(ROOT / "config" / "agreements.example.yaml")
    stage("agr_0001", [_bill("bill_a", 2)], "night-0", Counter())
    with session() as sess:
        sess.execute(update(models.StagedBill).values(state="planned"))

    def meanwhile(record: dict[str, Any]) -> dict[str, Any]:  # runs after the read, before the write
        if record["version"] == 3:
            stage("agr_0001", [_bill("bill_a", 4, amount="400.00")], "backfill", Counter())
            with session() as sess:
                sess.execute(update(models.StagedBill).values(state="planned"))
        return record

    counts = Counter()
    extract._stage_pages([("agr_0001", [_bill("bill_a", 3, amount="300.00")], counts)], "night-1", judge=meanwhile)

    assert _staged() == {("agr_0001", "bill_a"): (4, "planned")}
    with session() as sess:
        assert sess.scalar(select(models.StagedBill.payload))["amount"] == "400.00"


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_a_write_that_hangs_holds_no_page_but_its_own(project_db, monkeypatch):
    """A page behind a write that does not end is staged alone once it has waited ``STAGE_WAIT``; a page handed
    over after that is staged alone at once; the hung write's own page is staged when it ends."""
    monkeypatch.setattr(extract, "STAGE_WAIT", 0.3)
    staging, writes = _group(monkeypatch)
    results: dict[str, Any] = {}

    def one(aid: str, bill_id: str) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: results.setdefault(aid, staging.stage(aid, [_bill(bill_id, 1)], Counter())), daemon=True
        )
        thread.start()
        return thread

    hung = one("agr_0001", "bill_a")
    _wait_for(writes.started.is_set, "the first write")
    waited = one("agr_0002", "bill_b")  # waits STAGE_WAIT, then is staged alone
    waited.join(timeout=10)
    assert not waited.is_alive(), "agr_0002 waited for the hung write"
    at_once = one("agr_0003", "bill_c")  # the write has hung longer than STAGE_WAIT: not even handed over
    queued = 0
    while at_once.is_alive():
        queued = max(queued, len(staging._waiting))
        time.sleep(0.002)
    assert queued == 0
    assert set(_staged()) == {("agr_0002", "bill_b"), ("agr_0003", "bill_c")}  # the first write still hangs

    writes.release()
    hung.join(timeout=10)
    assert results == {aid: Counter(staged=1) for aid in ("agr_0001", "agr_0002", "agr_0003")}
    assert writes.agreements == [["agr_0001"], ["agr_0002"], ["agr_0003"]]
    _then_alone_as_before(staging, "agr_0002")


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_newer_versions_of_many_agreements_written_in_one_statement_restart_from_new(project_db):
    """Newer versions of 150 bills of two agreements in one write (PostgreSQL sends them in pages): each holds
    its new body, run and version and is ``new`` again whatever its state was; the one bill another run staged
    at the same version meanwhile, and moved on, is left as that run left it."""
    load_file(ROOT / "config" / "agreements.example.yaml")
    ids = {aid: [f"bill_{aid}_{n:03d}" for n in range(75)] for aid in ("agr_0001", "agr_0002")}
    for aid, bill_ids in ids.items():
        stage(aid, [_bill(b, 1) for b in bill_ids], "night-0", Counter())
    with session() as sess:
        sess.execute(update(models.StagedBill).values(state="booked"))
    raced = ids["agr_0002"][40]

    def meanwhile(record: dict[str, Any]) -> dict[str, Any]:  # runs after the read, before the write
        if record["id"] == raced:
            stage("agr_0002", [_bill(raced, 2, amount="999.00")], "backfill", Counter())
            with session() as sess:
                sess.execute(
                    update(models.StagedBill).where(models.StagedBill.bill_id == raced).values(state="planned")
                )
        return record

    pages = [(aid, [_bill(b, 2, amount="200.00") for b in bill_ids], Counter()) for aid, bill_ids in ids.items()]
    extract._stage_pages(pages, "night-1", judge=meanwhile)

    staged = models.StagedBill
    with session() as sess:
        rows = {
            (aid, bill): (version, state, payload["amount"], run)
            for aid, bill, version, state, payload, run in sess.execute(
                select(staged.agreement_id, staged.bill_id, staged.version, staged.state, staged.payload, staged.run_id)
            )
        }
    assert rows.pop(("agr_0002", raced)) == (2, "planned", "999.00", "backfill")
    assert len(rows) == 149
    assert set(rows.values()) == {(2, "new", "200.00", "night-1")}
    assert [counts for _aid, _bills, counts in pages] == [Counter(staged=75), Counter(staged=75)]
