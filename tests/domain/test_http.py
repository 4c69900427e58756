"""The Roger and e-conomic clients against the running sandboxes: paging, 401, 429, schema rejection."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devkit import local
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import AuthError, RateLimited, ValidationRejected
from roger_economic.http import Calls, RetryPolicy
from roger_economic.roger.client import RogerClient
from sandboxes import world


@pytest.fixture(scope="module")
def boxes():
    roger, economic = local.start_sandboxes(agreements=2, bills=45, prefix="cli-", app_secret="cli-app")
    yield roger, economic
    roger.stop()
    economic.stop()


def economic_client(economic, token: str | None = None, sleeps: list[float] | None = None, budget: float = 60):
    policy = RetryPolicy(
        base_delay=0.01, budget=budget, sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )
    return EconomicClient(
        economic.base_url, "cli-app", token or world.grant_token(1, "cli-"), Calls("agr_0001", policy)
    )


def test_roger_walk_returns_every_bill_once_in_feed_order(boxes):
    roger, _ = boxes
    client = RogerClient(f"{roger.base_url}/v1", "cmp_0001", world.roger_token(1, "cli-"), Calls("agr_0001"))
    bills = list(client.bills(None, None, limit=7))
    truth = roger.control("GET", "bills?company_id=cmp_0001")["data"]
    assert [b["id"] for b in bills] == [b["id"] for b in truth]
    assert [(b["updated_at"], b["id"]) for b in bills] == sorted((b["updated_at"], b["id"]) for b in bills)


def test_roger_rejected_token_names_agreement_and_endpoint_but_not_the_token(boxes):
    roger, _ = boxes
    client = RogerClient(f"{roger.base_url}/v1", "cmp_0001", "cli-wrong-token-123", Calls("agr_0001"))
    with pytest.raises(AuthError) as caught:
        client.categories()
    assert "agr_0001" in str(caught.value) and "/categories" in str(caught.value)
    assert "cli-wrong-token-123" not in str(caught.value)


def test_economic_collection_follows_paging(boxes):
    _, economic = boxes
    client = economic_client(economic)
    accounts = client.collection("/accounts")
    assert [a["accountNumber"] for a in accounts] == [a.number for a in world.CHART_OF_ACCOUNTS]
    # pages of 1000 are the client's default; force small pages through the sandbox's own paging
    page = client.get("/accounts", {"skippages": 1, "pagesize": 5})
    assert page["pagination"]["skipPages"] == 1 and len(page["collection"]) == 5


def test_economic_401_is_an_auth_error_without_the_token(boxes):
    _, economic = boxes
    with pytest.raises(AuthError) as caught:
        economic_client(economic, token="cli-grant-9999").self_()
    assert caught.value.status == 401 and "agr_0001" in str(caught.value)
    assert "cli-grant-9999" not in str(caught.value) and "cli-app" not in str(caught.value)


def test_economic_429_is_retried_after_the_time_it_asks(boxes):
    _, economic = boxes
    economic.control(
        "POST",
        "faults",
        {
            "kind": "status",
            "status": 429,
            "retry_after": 3,
            "times": 2,
            "scope": str(world.agreement_number(1)),
            "path": "^/self$",
        },
    )
    sleeps: list[float] = []
    answer = economic_client(economic, sleeps=sleeps).self_()
    assert answer["agreementNumber"] == world.agreement_number(1)
    assert sleeps == [3.0, 3.0]


def test_economic_429_beyond_the_budget_gives_up_clearly(boxes):
    _, economic = boxes
    economic.control(
        "POST",
        "faults",
        {
            "kind": "status",
            "status": 429,
            "retry_after": 30,
            "times": -1,
            "scope": str(world.agreement_number(1)),
            "path": "^/self$",
        },
    )
    try:
        with pytest.raises(RateLimited) as caught:
            economic_client(economic, sleeps=[], budget=45).self_()
        assert "agr_0001" in str(caught.value) and "/self" in str(caught.value)
    finally:
        economic.control("DELETE", "faults", {})


def test_economic_schema_rejection_names_the_field(boxes):
    _, economic = boxes
    voucher = {
        "accountingYear": {"year": "2026"},
        "journal": {"journalNumber": 2},
        "entries": {
            "supplierInvoices": [
                {
                    "supplier": {"supplierNumber": 1},
                    "amount": Decimal("-100.005"),
                    "contraAccount": {"accountNumber": 2750},
                    "currency": {"code": "DKK"},
                    "date": "2026-10-05",
                    "text": "x [bill_TEST000001]",
                }
            ]
        },
    }
    with pytest.raises(ValidationRejected) as caught:
        economic_client(economic).post_vouchers(2, [voucher], "cli-key-1")
    paths = [path for path, *_ in caught.value.fields]
    assert any("amount" in p for p in paths), caught.value.fields
    assert "amount" in str(caught.value)


def test_a_vendor_name_with_filter_syntax_finds_only_its_own_supplier(boxes):
    """README "Paging and filtering": a value inside a filter escapes ``$ ( ) *``; unescaped, a vendor named
    ``Zeta $or:name$like:*`` turned the look-up before creating a supplier again into "match everything" and
    the bill would have been booked on supplier 1."""
    from roger_economic.posting import suppliers

    _, economic = boxes
    client = economic_client(economic, world.grant_token(2, "cli-"))
    vendor = {"name": "Zeta (DK) $or:name$like:*", "cvr": None}
    assert suppliers.find(client, vendor) is None
    created = client.create_supplier(
        {
            "name": vendor["name"],
            "currency": "DKK",
            "supplierGroup": {"supplierGroupNumber": 1},
            "paymentTerms": {"paymentTermsNumber": 1},
            "vatZone": {"vatZoneNumber": 1},
        },
        "key-zeta",
    )
    assert suppliers.find(client, vendor) == created["supplierNumber"]


def test_agreements_share_connections_but_each_call_carries_its_own_tokens(boxes):
    """One pool per service and process: the second agreement's calls go over the first one's connection,
    answered for the second agreement, and closing one client leaves the other's calls working."""
    _, economic = boxes
    first = economic_client(economic)
    second = EconomicClient(economic.base_url, "cli-app", world.grant_token(2, "cli-"), Calls("agr_0002"))
    assert first.http.pool is second.http.pool
    assert first.self_()["agreementNumber"] == world.agreement_number(1)
    first.close()
    assert second.self_()["agreementNumber"] == world.agreement_number(2)
    assert first.self_()["agreementNumber"] == world.agreement_number(1)
    wrong = EconomicClient(economic.base_url, "cli-app", "cli-wrong-grant", Calls("agr_0003"))
    with pytest.raises(AuthError):  # a connection another agreement used lends it nothing
        wrong.self_()


def test_a_deadline_that_fires_late_leaves_alone_a_connection_the_next_call_took():
    """Connections are shared: the moment a try's answer is read, its connection is back in the pool and may be
    another agreement's. That try's deadline, firing just then, must not cut the other call's socket."""
    import socket

    from roger_economic.http import _WATCHDOG, _Call, _HTTPConnection, _HTTPPool

    pool = _HTTPPool("127.0.0.1", 9, maxsize=1)
    conn = pool._get_conn()  # the pool's one connection, taken for the first try
    assert isinstance(conn, _HTTPConnection)
    ours, peer = socket.socketpair()
    conn.sock = ours
    first, second = _Call(float("inf")), _Call(float("inf"))
    _WATCHDOG._local.call = first
    conn._watched()  # the first try uses the connection; its answer is read and the connection handed back
    pool._put_conn(conn)
    first.expire()  # its deadline fires just then: nothing to cut
    assert not first.cut
    _WATCHDOG._local.call = second
    conn._watched()  # the pool gives it to the next try
    _WATCHDOG._local.call = None
    first.expire()
    ours.sendall(b"x")
    assert peer.recv(1) == b"x", "the second call's connection is still open"
    second.expire()
    with pytest.raises(OSError):
        ours.sendall(b"y")  # its own deadline does close it
    ours.close()
    peer.close()
