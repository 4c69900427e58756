"""The client, the sandbox and e-conomic's documentation agree on payment types (README "Payment types").

The README table is parsed here, by the test itself, and is the reference: the client's one table
(``conventions.PAYMENT_TYPES``, what ``payment_codes`` sends), the sandbox's reading of the README and of the
voucher schema's ``oneOf`` must each equal it. The sandbox ships copies of the shared schemas and README:
they must be the shared files byte for byte, or the sandbox would judge by other rules than e-conomic's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.economic_schema import README, documented_payment_types

from roger_economic import payment_codes
from roger_economic.economic import conventions
from sandboxes.economic import validation as sandbox

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sandboxes" / "economic"
SHARED = next((p / "shared" / "economic-api" for p in ROOT.parents if (p / "shared" / "economic-api").is_dir()), None)


def shared() -> Path:
    if SHARED is None:
        pytest.skip("the shared folder (economic-api) is not beside the project")
    return SHARED


def documented() -> dict[int, tuple[str, tuple[str, ...]]]:
    """number -> (name, detail fields) from the shared README's "Payment types" table, read independently."""
    shared()
    return documented_payment_types()


def test_the_readme_table_is_what_the_brief_says_e_conomic_documents():
    assert README.read_bytes() == (shared() / "README.md").read_bytes()
    table = documented()
    assert {n: name for n, (name, _) in table.items()} == {
        1: "+71",
        2: "+73",
        5: "+04",
        7: "Bank transfer",
        10: "IBAN",
        14: "Entry only",
        17: "+75",
    }


def test_the_client_sends_the_documented_numbers_and_fields():
    table = documented()
    client = {n: (name, tuple(f for f in (a, b) if f)) for n, (name, a, b) in conventions.PAYMENT_TYPES.items()}
    assert client == table
    for code, message in (
        ("+71<000000001234567+85123456<", None),
        ("+73<+86020310<", "2026-0042"),
        ("+75<0000000012345678+87654321<", None),
        ("+04<0000000012345678+12345678<", None),
    ):
        details = payment_codes.parse(code, message).details
        number = payment_codes.type_number(details)
        assert table[number][0] == code[:3]
        assert set(details["paymentType"]) - {"paymentTypeNumber"} == set(table[number][1])


def test_the_sandbox_reads_the_same_table_and_a_schema_shape_for_each_type():
    table = documented()
    assert {n: (t.name, t.fields) for n, t in sandbox.payment_types().items()} == table
    shapes = sandbox.payment_type_shapes()
    assert set(shapes) == {n for n, (_, fields) in table.items() if fields}
    for number, shape in shapes.items():
        required = {k for k, v in shape["properties"].items() if v.get("required")}
        assert required == set(table[number][1])


def test_the_sandbox_ships_the_shared_schemas_and_readme_unchanged():
    source = shared()
    ours = {p.name: p.read_bytes() for p in (SHIPPED / "schemas").glob("*.json")}
    theirs = {p.name: p.read_bytes() for p in (source / "schemas").glob("*.json")}
    assert ours == theirs
    assert (SHIPPED / "README.md").read_bytes() == (source / "README.md").read_bytes()
    json.loads(ours["journals.journalNumber.vouchers.post.schema.json"])  # and it is readable JSON
