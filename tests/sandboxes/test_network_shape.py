"""The benchmark's production shape, as the sandboxes act it out: latency per call, a skewed night, the
fair-use bucket and per-agreement timing, each over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from sandboxes import world
from sandboxes.httpbase import LATENCY_PRESETS, Latency, SandboxProcess
from sandboxes.roger import data

NIGHT = "0-3:70,4-30:25,100-400:5"


def _bills(base: str, i: int) -> requests.Response:
    return requests.get(
        f"{base}/v1/companies/{world.company_id(i)}/bills",
        params={"limit": 500},
        headers={"Authorization": f"Bearer {world.roger_token(i)}"},
        timeout=10,
    )


def test_latency_is_the_same_for_the_same_call_and_follows_its_preset() -> None:
    latency = Latency.parse("economic")
    assert latency is not None
    draws = sorted(latency.seconds("700001", "GET", f"/suppliers?n={n}", 0) for n in range(4000))
    median, tail = draws[len(draws) // 2], draws[-1]
    assert 0.10 <= median <= 0.14  # about 120 ms
    assert 0.6 <= tail <= 1.0  # a tail towards a second, never beyond
    assert latency.seconds("700001", "GET", "/self", 0) == latency.seconds("700001", "GET", "/self", 0)
    upload = latency.seconds("700001", "POST", "/journals/1/vouchers/2026-1/attachment/file", 0)
    assert latency.seconds("700001", "POST", "/journals/1/vouchers/2026-1/attachment/file", 200 * 1024) > upload
    with pytest.raises(ValueError):
        Latency.from_json({"median": 5})


def test_skewed_night_counts_are_seeded_and_mostly_small() -> None:
    counts = [data.night_bills(NIGHT, 7, i) for i in range(1, 1001)]
    assert counts == [data.night_bills(NIGHT, 7, i) for i in range(1, 1001)]
    assert 0.6 < sum(c <= 3 for c in counts) / len(counts) < 0.8
    assert 0.02 < sum(c >= 100 for c in counts) / len(counts) < 0.08
    assert max(counts) <= 400


def test_roger_serves_the_skewed_night_with_latency_and_times_each_company() -> None:
    with SandboxProcess("sandboxes.roger", ["--companies", "4", "--night", NIGHT, "--latency", "roger"]) as roger:
        for i in (1, 2, 3, 4):
            assert len(_bills(roger.base_url, i).json()["data"]) == data.night_bills(NIGHT, 7, i)
        timing = roger.control("GET", "timing")
        assert set(timing) == {world.company_id(i) for i in (1, 2, 3, 4)}
        assert all(t["calls"] == 1 and t["slept_s"] > 0 for t in timing.values())
        roger.control("POST", "latency", {"median_ms": 300, "sigma": 0, "min_ms": 300})
        begun = time.monotonic()
        _bills(roger.base_url, 1)
        assert time.monotonic() - begun >= 0.3
        roger.control("DELETE", "latency")
        assert roger.control("DELETE", "timing") == {}


def test_economic_bucket_answers_429_to_one_agreement_only() -> None:
    with SandboxProcess("sandboxes.economic", ["--agreements", "2"]) as eco:
        assert eco.control("POST", "rate-limit", {"rate": 2}) == {"rate": 2.0}

        def self_of(i: int) -> int:
            headers = {"X-AppSecretToken": world.DEFAULT_APP_SECRET, "X-AgreementGrantToken": world.grant_token(i)}
            return requests.get(f"{eco.base_url}/self", headers=headers, timeout=10).status_code

        statuses = [self_of(1) for _ in range(6)]
        assert 429 in statuses
        assert self_of(2) == 200  # another agreement's bucket is its own
        timing = eco.control("GET", "timing")
        assert timing[str(world.agreement_number(1))]["throttled"] >= 1
        assert timing[str(world.agreement_number(2))]["throttled"] == 0
        eco.control("POST", "latency", LATENCY_PRESETS["economic"])
        assert eco.control("GET", "latency")["median_ms"] == 120
