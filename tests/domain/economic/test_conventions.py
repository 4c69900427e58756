"""Each *assumed* e-conomic convention can be switched without a code change (``economic/conventions.py``).

The switches are environment variables read when the module is imported, so each case imports it in a fresh
interpreter with the variable set, as a deployment would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INCLUDE = Path(__file__).resolve().parents[3] / "include"
PROBE = """
import json
from decimal import Decimal
from roger_economic.economic import conventions as c
print(json.dumps({
    "invoice": str(c.invoice_amount("bill", Decimal("100.00"))),
    "payment": str(c.payment_amount("bill", Decimal("100.00"))),
    "credit_note": str(c.invoice_amount("credit_note", Decimal("100.00"))),
    "scanning": sorted(c.SCANNING_MODULE_NAMES),
    "zones": [c.vat_zone_for("DK"), c.vat_zone_for("DE"), c.vat_zone_for("US")],
    "too_large": c.TOO_LARGE_STATUS, "gone": c.GONE_ENTRY_STATUS,
}))
"""


def probe(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(INCLUDE), **env},
    )
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout)


def test_defaults_are_the_readings_the_readme_gives():
    assert probe() == {
        "invoice": "-100.00",
        "payment": "100.00",
        "credit_note": "100.00",
        "scanning": ["indscanning", "scanning"],
        "zones": [1, 2, 3],
        "too_large": 413,
        "gone": 404,
    }


def test_each_assumed_convention_has_a_switch():
    got = probe(
        ECONOMIC_CREDIT_SIGN="+",
        ECONOMIC_SCANNING_MODULE_NAMES="Scanning Add-on",
        ECONOMIC_VAT_ZONES="11,12,13",
        ECONOMIC_TOO_LARGE_STATUS="400",
        ECONOMIC_GONE_ENTRY_STATUS="410",
    )
    assert got == {
        "invoice": "100.00",
        "payment": "-100.00",
        "credit_note": "-100.00",
        "scanning": ["scanning add-on"],
        "zones": [11, 12, 13],
        "too_large": 400,
        "gone": 410,
    }


@pytest.mark.parametrize(
    "env",
    [{"ECONOMIC_CREDIT_SIGN": "minus"}, {"ECONOMIC_VAT_ZONES": "1,2"}, {"ECONOMIC_TOO_LARGE_STATUS": "200"}],
    ids=["sign", "zones", "status"],
)
def test_a_switch_with_a_wrong_value_is_refused_by_name(env: dict[str, str]):
    with pytest.raises(RuntimeError, match=next(iter(env))):
        probe(**env)
