"""Every try of an HTTP call is over within its timeout, however slowly the server answers.

urllib3's read timeout is per read: a server that drips its answer a byte at a time never lets it fire, and
one call once took 107 s with a 5 s timeout. The sandbox's ``drip`` fault sends every byte of the answer
(status line, headers, body) well within a read timeout, but the whole answer takes far longer than the
call's deadline.
"""

from __future__ import annotations

import pytest

from roger_economic import pipeline
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import Unreachable
from roger_economic.http import Calls, RetryPolicy
from sandboxes import world
from tests.faults.helpers import arm, endpoints, fired, ledger_rows, prepare, state_of
from tests.integration.helpers import live_entries

DRIP = 0.02  # seconds between two bytes: a /self answer takes about half a minute, a read never waits long


def _client(economic, **policy) -> EconomicClient:
    return EconomicClient(
        economic.base_url, world.DEFAULT_APP_SECRET, world.grant_token(1), Calls("agr_0001", RetryPolicy(**policy))
    )


def test_a_dripping_answer_ends_the_call_at_its_deadline(economic_only):
    economic = economic_only
    arm(economic, kind="drip", delay=DRIP, scope="700001", path="^/self$", times=1)
    client = _client(economic, max_attempts=1, timeout=1.0)

    with pytest.raises(Unreachable) as caught:
        client.self_()

    assert "timeout" in str(caught.value) and "GET /self" in str(caught.value)
    assert [f["kind"] for f in fired(economic)] == ["drip"]


def test_a_read_after_a_dripping_answer_is_tried_again_and_succeeds(economic_only):
    economic = economic_only
    waits: list[float] = []
    arm(economic, kind="drip", delay=DRIP, scope="700001", path="^/self$", times=1)
    client = _client(economic, max_attempts=3, timeout=1.0, base_delay=0.01, sleep=waits.append)

    assert client.self_()["agreementNumber"] == 700001
    assert len(waits) == 1  # one try given up at its deadline, the next one answered


def test_a_voucher_post_whose_answer_drips_is_retried_with_its_key_and_booked_once(demo):
    _roger, economic = demo
    prepare(["agr_0001"])
    planned = sum(1 for r in ledger_rows("agr_0001") if r.status == "planned")
    arm(economic, kind="drip", delay=DRIP, scope="700001", method="POST", path=r"^/journals/\d+/vouchers$", times=1)

    result = pipeline.load(["agr_0001"], endpoints(), "run-drip")

    assert result["agr_0001"]["outcome"] == "ok", result
    assert [f["kind"] for f in fired(economic)] == ["drip"]
    rows = ledger_rows("agr_0001")
    assert {r.status for r in rows} == {"posted"} and len(rows) == planned
    state = state_of(economic, 1)
    assert sum(1 for v in state["vouchers"] if v["status"] != "deleted") == planned
    assert max(live_entries(state).values()) == 1
