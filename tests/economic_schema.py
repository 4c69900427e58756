"""e-conomic's own voucher schema, checked the way e-conomic checks it (independent of the sandbox).

Plain draft-03 plus what the README says a draft-03 validator ignores:
``maxDecimal``, the ``oneOf`` under ``paymentDetails.paymentType``, and real dates.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "economic-api" / "schemas"
if not SCHEMAS.exists():  # CI lays shared/ beside the clone; the package carries a copy too
    SCHEMAS = Path(__file__).resolve().parents[1] / "sandboxes" / "economic" / "schemas"
VOUCHER_POST = "journals.journalNumber.vouchers.post.schema.json"
README = SCHEMAS.parent / "README.md"  # the shared economic-api/README.md, or the sandbox's copy of it


def _decimals(value: Any) -> int:
    text = format(value, "f") if isinstance(value, Decimal) else repr(value)
    return len(text.split(".", 1)[1].rstrip("0")) if "." in text else 0


def _max_decimal(validator, limit, instance, schema):
    if isinstance(instance, int | float | Decimal) and not isinstance(instance, bool) and _decimals(instance) > limit:
        yield jsonschema.ValidationError(f"{instance} has more than {limit} decimals")


def _one_of(validator, alternatives, instance, schema):
    matches = sum(1 for alt in alternatives if validator.evolve(schema=alt).is_valid(instance))
    if matches != 1:
        yield jsonschema.ValidationError(f"{instance!r} matches {matches} of the oneOf alternatives, not exactly one")


def _pattern(validator, pattern, instance, schema):
    yield from jsonschema._keywords.pattern(validator, pattern, instance, schema)
    if schema.get("format") == "full-date" and isinstance(instance, str):
        try:
            date.fromisoformat(instance)
        except ValueError:
            yield jsonschema.ValidationError(f"{instance!r} is not a real date")


@cache
def validator(name: str = VOUCHER_POST) -> jsonschema.Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.extend(
        jsonschema.Draft3Validator, {"maxDecimal": _max_decimal, "oneOf": _one_of, "pattern": _pattern}
    )
    return cls(schema)


def errors(payload: Any, name: str = VOUCHER_POST) -> list[str]:
    """Every reason e-conomic would refuse ``payload`` (decimals must be ``Decimal``: parse with parse_float)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(payload)]


@cache
def documented_payment_types() -> dict[int, tuple[str, tuple[str, ...]]]:
    """number -> (name, detail fields) from the README's "Payment types" table, read by the tests themselves."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Payment types", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            fields = tuple(m for c in cells[2:] for m in re.findall(r"^`(\w+)`", c))
            rows[int(cells[0])] = (cells[1], fields)
    return rows
