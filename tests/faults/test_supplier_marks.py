"""A group's load marks every agreement's new suppliers ``creating`` at its start, in one transaction, before
any is created: killed before an agreement's turn, each supplier is still made once in e-conomic and every
bill booked to it."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from roger_economic import pipeline
from roger_economic.context import load_contexts
from roger_economic.db import models, session
from roger_economic.posting.suppliers import Marks, create_missing, mark_creating
from roger_economic.posting.work import read_work
from tests.faults.helpers import (
    AGREEMENTS,
    all_roger_ids,
    arm,
    check,
    control,
    disarm,
    endpoints,
    fired,
    ledger_rows,
    prepare,
    state_of,
)
from tests.faults.test_crash_safety import _load_killed_when

GROUP_LOAD_ONE_AT_A_TIME = """
from roger_economic import pipeline
from roger_economic.credentials import Endpoints
from roger_economic.steps import load
load.LOAD_THREADS = 1  # the agreements in turn: the kill comes before the later ones' turn
pipeline.load(["agr_0001", "agr_0002", "agr_0003"], Endpoints.from_env(), "group-to-be-killed")
"""


def _links(aid: str) -> dict[str, tuple[str, int | None]]:
    link = models.SupplierLink
    with session() as sess:
        return {
            key: (how, number)
            for key, how, number in sess.execute(
                select(link.vendor_key, link.how, link.supplier_number).where(link.agreement_id == aid)
            )
        }


def _vendors_to_create(aid: str) -> set[str]:
    return {
        r.payload["vendor"]["key"]
        for r in ledger_rows(aid)
        if r.status == "planned" and (r.payload.get("vendor") or {}).get("how") == "create"
    }


def _supplier_names(economic, i: int) -> Counter:
    return Counter(s["name"] for s in state_of(economic, i)["suppliers"])


def _assert_each_supplier_once_and_every_bill_booked(roger, economic) -> None:
    for i, aid in AGREEMENTS.items():
        names = _supplier_names(economic, i)
        assert max(names.values()) == 1, (aid, names)  # the sandbox's master data has unique names too
        assert {r.status for r in ledger_rows(aid)} == {"posted"}, aid
        for key, (how, number) in _links(aid).items():
            assert how == "created" and number is not None, (aid, key, how)
    bills = {i: sorted(all_roger_ids(roger, i)) for i in AGREEMENTS}
    result = check(roger, economic, bills, final=True)
    assert result.duplicates == 0 and result.lost == 0 and result.foreign == 0, result.problems


def _lookups(economic) -> dict[int, int]:
    """``GET /suppliers`` per agreement: in a load (no master-data refresh) each is a look-up before a creation."""
    return {i: state_of(economic, i)["counters"].get("suppliers", {}).get("GET", 0) for i in AGREEMENTS}


def test_killed_before_an_agreement_s_turn_its_suppliers_are_made_once_by_the_next_run(demo):
    roger, economic = demo
    ids = list(AGREEMENTS.values())
    prepare(ids)
    wanted = {aid: _vendors_to_create(aid) for aid in ids}
    assert sum(1 for vendors in wanted.values() if vendors) >= 2, wanted
    before = {i: _supplier_names(economic, i) for i in AGREEMENTS}
    # the first supplier call is held in e-conomic: killed then, the group is on the first agreement it took
    for scope in ("700001", "700002", "700003"):
        arm(economic, kind="slow", delay=5, scope=scope, method="POST", path="^/suppliers$", times=-1)
    _load_killed_when(lambda: bool(fired(economic)), script=GROUP_LOAD_ONE_AT_A_TIME)
    first = int(fired(economic)[0]["scope"]) - 700_000
    disarm(economic)
    # the held call the dead process had sent still lands: that supplier is made, its answer never recorded
    deadline = time.monotonic() + 30
    while sum(_supplier_names(economic, first).values()) == sum(before[first].values()):
        assert time.monotonic() < deadline, "the held supplier call never landed"
        time.sleep(0.2)
    assert sum(_supplier_names(economic, first).values()) == sum(before[first].values()) + 1
    for i, aid in AGREEMENTS.items():  # every agreement's marked at the group's start, before any creation
        creating = {key for key, (how, _number) in _links(aid).items() if how == "creating"}
        assert creating == wanted[aid], aid
        if i != first:
            assert _supplier_names(economic, i) == before[i], aid  # not reached: nothing made for it
    # an hour later: e-conomic has forgotten the creation's idempotency key, only the look-up protects now
    control(economic, "POST", "clock", {"advance_seconds": 3700})
    looked_up = _lookups(economic)

    result = pipeline.load(ids, endpoints(), "run-again")

    assert all(r["outcome"] == "ok" for r in result.values()), result
    after = _lookups(economic)
    assert {aid: after[i] - looked_up[i] for i, aid in AGREEMENTS.items()} == {a: len(v) for a, v in wanted.items()}
    _assert_each_supplier_once_and_every_bill_booked(roger, economic)


def _create_for_agr_0001(marks: Marks, meanwhile=lambda: None) -> tuple[dict[str, int], Counter]:
    """agr_0001's step 3 alone, with ``marks`` as its group would hand them and ``meanwhile`` done after its
    context was read: (suppliers made, counts)."""
    with session() as sess:
        ctx = load_contexts(sess, ["agr_0001"])["agr_0001"]
    meanwhile()
    with session() as sess:
        planned = read_work(sess, ["agr_0001"])["agr_0001"].planned
    economic, roger = pipeline.clients(ctx.settings, endpoints())
    made: dict[str, int] = {}
    counts: Counter = Counter()
    try:
        create_missing(session, ctx, economic, planned, counts, made, marks=marks)
    finally:
        economic.close()
        roger.close()
    return made, counts


def test_a_group_s_fresh_marks_create_each_supplier_with_one_call(demo):
    _roger, economic = demo
    prepare(["agr_0001"])
    wanted = _vendors_to_create("agr_0001")
    with session() as sess:  # what the group's start wrote and hands over
        ctx = load_contexts(sess, ["agr_0001"])["agr_0001"]
        look_up = mark_creating(sess, {"agr_0001": (ctx, {key: {} for key in wanted})})["agr_0001"]
    assert look_up == dict.fromkeys(wanted, False)
    looked_up = _lookups(economic)[1]

    made, counts = _create_for_agr_0001(Marks(look_up, lease_kept=lambda: True))

    assert set(made) == wanted and counts["suppliers_created"] == len(wanted)
    assert _lookups(economic)[1] == looked_up  # marked fresh by the group: no look-up before the creation


def test_marks_made_before_the_lease_lapsed_are_not_trusted(demo):
    """Another run that took the agreement over meanwhile made and linked one of its suppliers: a load whose
    group's lease lapsed reads the links again instead of creating that supplier a second time."""
    _roger, economic = demo
    prepare(["agr_0001"])
    wanted = sorted(_vendors_to_create("agr_0001"))
    with session() as sess:  # what the group's start wrote and hands over
        ctx = load_contexts(sess, ["agr_0001"])["agr_0001"]
        look_up = mark_creating(sess, {"agr_0001": (ctx, {key: {} for key in wanted})})["agr_0001"]
    theirs = state_of(economic, 1)["suppliers"][0]["supplierNumber"]

    def other_run_links_it() -> None:  # the run that took over, after looking the supplier up
        with session() as sess:
            link = sess.get_one(models.SupplierLink, ("agr_0001", wanted[0]))
            link.how, link.supplier_number, link.created_at = "created", theirs, datetime.now(UTC)

    names, looked_up = _supplier_names(economic, 1), _lookups(economic)[1]

    made, counts = _create_for_agr_0001(Marks(look_up, lease_kept=lambda: False), other_run_links_it)

    assert wanted[0] not in made and counts["suppliers_created"] == len(wanted) - 1
    assert sum(_supplier_names(economic, 1).values()) == sum(names.values()) + len(wanted) - 1
    assert _links("agr_0001")[wanted[0]] == ("created", theirs)
    # the others' links say ``creating`` now: each looked up before it is made
    assert _lookups(economic)[1] - looked_up == len(wanted) - 1


def test_when_the_group_cannot_write_its_marks_each_load_marks_its_own(demo, monkeypatch):
    """The database refuses the group's one write of its marks (away for a moment): nothing is half marked,
    each agreement's load marks its own suppliers as it comes to them, and each is made once, with no look-up."""
    from sqlalchemy.exc import OperationalError

    from roger_economic.posting import suppliers

    roger, economic = demo
    ids = list(AGREEMENTS.values())
    prepare(ids)
    wanted = {aid: _vendors_to_create(aid) for aid in ids}
    real, refused = suppliers.mark_creating, []

    def refused_for_the_group(sess, vendors):
        if len(vendors) > 1:  # the group's write; an agreement's own has one
            refused.append(sorted(vendors))
            real(sess, vendors)  # written, then the database goes away before the commit
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real(sess, vendors)

    monkeypatch.setattr(suppliers, "mark_creating", refused_for_the_group)
    looked_up = _lookups(economic)

    result = pipeline.load(ids, endpoints(), "run-marks-refused")

    assert refused == [sorted(aid for aid, vendors in wanted.items() if vendors)]
    assert all(r["outcome"] == "ok" for r in result.values()), result
    assert _lookups(economic) == looked_up  # the refused write left no mark behind to look up
    _assert_each_supplier_once_and_every_bill_booked(roger, economic)
