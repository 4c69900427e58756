"""Retries are bounded and polite, against the real e-conomic sandbox over HTTP.

Waits are measured through the sleep injected into the RetryPolicy: a 429 is
never retried sooner than its Retry-After asks, the waiting stops within a
budget with a RateLimited error naming agreement and endpoint, and one
throttled agreement does not keep the others of its group from loading.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from roger_economic import pipeline
from roger_economic.db import models, session
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import RateLimited
from roger_economic.http import Calls, RetryPolicy
from sandboxes import world
from tests.faults.helpers import arm, endpoints, ledger_rows, prepare, state_of


def _client(economic, policy: RetryPolicy) -> EconomicClient:
    return EconomicClient(economic.base_url, world.DEFAULT_APP_SECRET, world.grant_token(1), Calls("agr_0001", policy))


@pytest.fixture()
def economic_only(fast_retries):
    from devkit import local

    roger, economic = local.start_sandboxes(agreements=2, bills=1)
    try:
        yield economic
    finally:
        roger.stop()
        economic.stop()


def test_backoff_waits_what_retry_after_asks(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="status", status=429, retry_after=2, scope="700001", path="^/self$", times=2)
    client = _client(economic, RetryPolicy(max_attempts=6, base_delay=0.01, sleep=waits.append))

    assert client.self_()["agreementNumber"] == 700001
    assert waits == [2.0, 2.0]


def test_a_long_retry_after_is_honoured_not_cut_short(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="status", status=429, retry_after=45, scope="700001", path="^/self$", times=1)
    client = _client(economic, RetryPolicy(max_delay=30, budget=120, sleep=waits.append))

    client.self_()
    assert waits == [45.0]  # retrying after 30 s would only earn another 429


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


def test_a_retry_after_given_as_an_http_date_is_waited_for(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="status", status=429, retry_after=_http_date(60), scope="700001", path="^/self$", times=1)
    client = _client(economic, RetryPolicy(max_delay=30, budget=120, sleep=waits.append))

    assert client.self_()["agreementNumber"] == 700001
    assert len(waits) == 1 and 50 < waits[0] <= 60  # until that moment (the date has whole seconds)


def test_a_retry_after_date_gone_by_means_now(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="status", status=429, retry_after=_http_date(-600), scope="700001", path="^/self$", times=1)
    client = _client(economic, RetryPolicy(sleep=waits.append))

    assert client.self_()["agreementNumber"] == 700001
    assert waits == [0.0]


def test_a_retry_after_date_beyond_the_budget_gives_up_at_once(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="status", status=429, retry_after=_http_date(3600), scope="700001", path="^/self$", times=-1)
    client = _client(economic, RetryPolicy(max_attempts=6, budget=120, sleep=waits.append))

    with pytest.raises(RateLimited) as caught:
        client.self_()
    assert waits == []  # asking again sooner than asked would only earn another 429
    assert "gave up after 1 attempt(s)" in str(caught.value) and "Retry-After 3" in str(caught.value)


def test_throttling_gives_up_within_the_budget_naming_agreement_and_endpoint(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="status", status=429, retry_after=3, scope="700001", path="^/journals/2/vouchers$", times=-1)
    client = _client(economic, RetryPolicy(max_attempts=50, budget=10, sleep=waits.append))

    with pytest.raises(RateLimited) as caught:
        client.post_vouchers(2, [{"accountingYear": {"year": "2026"}, "entries": {}}], "rb-test-key")
    assert waits == [3.0, 3.0, 3.0]  # a fourth wait would exceed the 10 s budget
    message = str(caught.value)
    assert "agr_0001" in message and "POST /journals/2/vouchers" in message and "429" in message
    assert "gave up after 4 attempt(s)" in message
    # the other agreement is not throttled at all
    other = EconomicClient(
        economic.base_url,
        world.DEFAULT_APP_SECRET,
        world.grant_token(2),
        Calls("agr_0002", RetryPolicy(sleep=waits.append)),
    )
    assert other.self_()["agreementNumber"] == 700002
    assert len(waits) == 3


def test_one_throttled_agreement_does_not_stall_the_others(demo, monkeypatch):
    _roger, economic = demo
    monkeypatch.setenv("ROGER_ECONOMIC_HTTP_BUDGET", "4")
    ids = ["agr_0001", "agr_0002", "agr_0003"]
    prepare(ids)
    arm(economic, kind="status", status=429, retry_after=1, scope="700001", times=-1)

    with pytest.raises(pipeline.AgreementsFailed) as caught:
        pipeline.load(ids, endpoints(), "run-throttled")

    assert set(caught.value.failures) == {"agr_0001"}
    assert "429" in caught.value.failures["agr_0001"] and "agr_0001" in caught.value.failures["agr_0001"]
    with session() as sess:
        finished = {
            r.agreement_id: (r.outcome, r.finished_at)
            for r in sess.scalars(select(models.RunReport).where(models.RunReport.run_id == "run-throttled"))
        }
    assert finished["agr_0001"][0] == "failed"
    for aid, i in (("agr_0002", 2), ("agr_0003", 3)):
        assert finished[aid][0] == "ok"
        assert finished[aid][1] < finished["agr_0001"][1], f"{aid} waited for the throttled agreement"
        rows = ledger_rows(aid)
        assert rows and all(r.status in ("posted", "rejected") for r in rows), aid
        assert len([v for v in state_of(economic, i)["vouchers"]]) == sum(r.status == "posted" for r in rows)
    assert not state_of(economic, 1)["vouchers"]
