"""Payload validation as e-conomic does it: its draft-03 schemas, plus what draft-03 ignores.

e-conomic's schemas (``economic-api/schemas``) are validated with a
``Draft3Validator`` extended with the three rules the API enforces on top:

- ``maxDecimal`` / ``maxDecimals``: at most that many decimals, counted exactly on
  the number as written (bodies are parsed with ``parse_float=Decimal``);
- ``oneOf`` (under ``paymentDetails.paymentType``): exactly one alternative matches;
- ``format: full-date``: an anchored, real calendar date (``2025-11-31`` fails).

Payment types (``paymentDetails.paymentType``) follow the README table "Payment types" (numbers, names,
detail fields) read at run time beside the schemas (``README.md`` next to ``schemas/``: the shared
``economic-api/README.md`` or the copy this package ships), and each number's shape is the ``oneOf``
alternative of the voucher schema that requires exactly that number's two fields: never the client's guess.

Errors come out as e-conomic's error tree (``errors`` mirrors the payload,
``arrayIndex`` names an array element), see :func:`add_error`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft3Validator, ValidationError, validators

SCHEMA_CODE = "E06010"  # the payload does not match the endpoint's schema

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --------------------------------------------------------------------------- JSON helpers


def loads(body: bytes) -> Any:
    """A request body as JSON with exact decimals."""
    return json.loads(body, parse_float=Decimal)


def plain(obj: Any) -> Any:
    """``obj`` with every ``Decimal`` turned into an int or float (ready for ``json.dumps``)."""
    if isinstance(obj, Decimal):
        if obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def decimals_of(value: Any) -> int:
    """How many decimals a number carries (trailing zeros do not count: 12.50 has 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return 0
    if isinstance(value, int):
        return 0
    try:
        dec = value if isinstance(value, Decimal) else Decimal(repr(value))
        exponent = dec.normalize().as_tuple().exponent
    except InvalidOperation:
        return 0
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def real_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the extended validator


def _max_decimal(validator: Any, limit: Any, instance: Any, schema: dict[str, Any]):
    if validator.is_type(instance, "number") and decimals_of(instance) > int(limit):
        yield ValidationError(f"Value has more than {limit} decimals.")


def _one_of(validator: Any, alternatives: list[dict[str, Any]], instance: Any, schema: dict[str, Any]):
    matched = sum(1 for alt in alternatives if validator.evolve(schema=alt).is_valid(instance))
    if matched == 0:
        yield ValidationError("Value matches none of the allowed alternatives.")
    elif matched > 1:
        yield ValidationError(f"Value matches {matched} of the allowed alternatives; exactly one must match.")


def _format(validator: Any, fmt: str, instance: Any, schema: dict[str, Any]):
    if fmt == "full-date" and isinstance(instance, str) and real_date(instance) is None:
        yield ValidationError(f"'{instance}' is not a valid date (YYYY-MM-DD).")


EconomicValidator = validators.extend(
    Draft3Validator,
    {"maxDecimal": _max_decimal, "maxDecimals": _max_decimal, "oneOf": _one_of, "format": _format},
)


def schema_dir() -> Path:
    """Where e-conomic's schemas are: ``$ECONOMIC_SCHEMAS_DIR``, a copy beside this module,
    or ``economic-api/schemas`` in the shared folder next to the project."""
    env = os.environ.get("ECONOMIC_SCHEMAS_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates.append(here.parent / "schemas")
    candidates.extend(parent / "shared" / "economic-api" / "schemas" for parent in here.parents)
    candidates.extend(parent / "economic-api" / "schemas" for parent in here.parents)
    for cand in candidates:
        if (cand / "journals.journalNumber.vouchers.post.schema.json").is_file():
            return cand
    raise FileNotFoundError("e-conomic schemas not found; set ECONOMIC_SCHEMAS_DIR")


@cache
def validator_for(schema_name: str) -> Any:
    """A compiled validator for ``<schema_name>.schema.json`` (built once per process)."""
    schema = json.loads((schema_dir() / f"{schema_name}.schema.json").read_text(encoding="utf-8"))
    return EconomicValidator(schema)


VOUCHERS_POST = "journals.journalNumber.vouchers.post"
SUPPLIERS_POST = "suppliers.post"


# --------------------------------------------------------------------------- payment types (README + schema)

E_PAYMENT_TYPE = "E07520"  # e-conomic's: "Payment type 3 not found"
ENTRY_ONLY_REFUSED = "not accepted on draft entries"  # README: type 14 "(not accepted on draft entries since 2025)"
_FIELD = re.compile(r"`([A-Za-z]+)`")


@dataclass(frozen=True)
class PaymentType:
    """One row of the README's "Payment types" table."""

    number: int
    name: str
    fields: tuple[str, ...]  # the detail fields, in the table's order (none for "Entry only")
    notes: tuple[str, ...]  # each field's description as written, e.g. "(digits, 15)"
    draft_entries: bool  # False where the README says the type is not accepted on draft entries


def readme_path() -> Path:
    """The e-conomic facts file beside the schemas: ``$ECONOMIC_API_README``, else ``README.md`` next to the
    schema folder (the shared ``economic-api/README.md``, or this package's copy of it)."""
    env = os.environ.get("ECONOMIC_API_README")
    return Path(env) if env else schema_dir().parent / "README.md"


def parse_payment_types(text: str) -> dict[int, PaymentType]:
    """The rows of the table under ``## Payment types`` in the README's markdown."""
    section = text.split("## Payment types", 1)[1].split("\n## ", 1)[0]
    out: dict[int, PaymentType] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].isdigit():
            continue
        fields, notes = [], []
        for cell in cells[2:4]:
            found = _FIELD.match(cell)
            if found:
                fields.append(found[1])
                notes.append(cell[found.end() :].strip())
        out[int(cells[0])] = PaymentType(
            int(cells[0]), cells[1], tuple(fields), tuple(notes), ENTRY_ONLY_REFUSED not in line
        )
    if not out:
        raise ValueError("no payment types found in the README's 'Payment types' table")
    return out


@cache
def payment_types() -> dict[int, PaymentType]:
    """Every payment type e-conomic documents, by number (read once per process)."""
    return parse_payment_types(readme_path().read_text(encoding="utf-8"))


def _payment_type_schema() -> dict[str, Any]:
    schema = json.loads((schema_dir() / f"{VOUCHERS_POST}.schema.json").read_text(encoding="utf-8"))
    entry = schema["properties"]["entries"]["properties"]["supplierInvoices"]["items"]
    return entry["properties"]["paymentDetails"]["properties"]["paymentType"]


def _required_names(alternative: dict[str, Any]) -> frozenset[str]:
    return frozenset(k for k, v in (alternative.get("properties") or {}).items() if v.get("required"))


@cache
def payment_type_shapes() -> dict[int, dict[str, Any]]:
    """Each documented type's ``oneOf`` alternative in the voucher schema (the one requiring its two fields)."""
    alternatives = _payment_type_schema()["oneOf"]
    shapes: dict[int, dict[str, Any]] = {}
    for number, ptype in payment_types().items():
        if not ptype.fields:
            continue
        fitting = [alt for alt in alternatives if _required_names(alt) == frozenset(ptype.fields)]
        if len(fitting) != 1:
            raise ValueError(
                f"payment type {number} ({ptype.name}): {len(fitting)} schema alternatives require "
                f"{', '.join(ptype.fields)}"
            )
        shapes[number] = fitting[0]
    return shapes


def _digits_ok(value: Any, note: str) -> bool:
    """The README's content rule for a field described with digits: "(digits, 15)" means digits only;
    "(2-16 digits, or `digits/text` ...)" means digits, optionally followed by ``/`` and text."""
    if "digits" not in note or not isinstance(value, str):
        return True
    head = value.split("/", 1)[0] if "digits/text" in note else value
    return re.fullmatch(r"[0-9]+", head) is not None


def payment_type_problems(ptype: dict[str, Any], offered: set[int] | frozenset[int]) -> list[tuple[str, str, Any]]:
    """What e-conomic refuses in one ``paymentDetails.paymentType``: (property, message, value) each."""
    number = ptype.get("paymentTypeNumber")
    documented = payment_types()
    if number not in documented or number not in offered:
        return [("paymentTypeNumber", f"Payment type {number} not found.", number)]
    known = documented[number]
    if not known.draft_entries:
        return [
            ("paymentTypeNumber", f"Payment type {number} ({known.name}) is not accepted on draft entries.", number)
        ]
    problems: list[tuple[str, str, Any]] = []
    shape = payment_type_shapes()[number]
    if not EconomicValidator(shape).is_valid(ptype):
        problems.append(
            (
                "paymentType",
                f"Payment type {number} ({known.name}) expects {' and '.join(known.fields)} as the schema gives them.",
                number,
            )
        )
    for field, note in zip(known.fields, known.notes, strict=True):
        if field in ptype and not _digits_ok(ptype[field], note):
            problems.append((field, f"{field} of payment type {number} must be {note.strip('()')}.", ptype[field]))
    return problems


# --------------------------------------------------------------------------- the error tree


def error_item(
    code: str,
    message: str,
    prop: str,
    value: Any = ...,
) -> dict[str, Any]:
    item: dict[str, Any] = {"errorCode": code, "message": message, "propertyName": prop}
    if value is not ...:
        item["value"] = plain(value)
    return item


def add_error(tree: dict[str, Any], path: list[str | int], item: dict[str, Any]) -> None:
    """Put ``item`` into ``tree`` at ``path`` (``["entries", "supplierInvoices", 0, "amount"]``)."""
    node = tree
    i = 0
    while i < len(path):
        part = path[i]
        if isinstance(part, int):  # an index directly under the root or under another index
            part = "items"
        nxt = path[i + 1] if i + 1 < len(path) else None
        if isinstance(nxt, int):
            lst = node.setdefault(str(part), [])
            elem = next((e for e in lst if e.get("arrayIndex") == nxt), None)
            if elem is None:
                elem = {"arrayIndex": nxt}
                lst.append(elem)
            node = elem
            i += 2
        else:
            node = node.setdefault(str(part), {})
            i += 1
    node.setdefault("errors", []).append(item)


def _message(err: ValidationError) -> str:
    v = err.validator
    if v == "required":
        return "Property is required."
    if v == "type":
        return f"Value must be of type {err.validator_value}."
    if v == "maxLength":
        return f"Value is longer than the maximum length of {err.validator_value}."
    if v == "minLength":
        return f"Value is shorter than the minimum length of {err.validator_value}."
    if v == "minimum":
        return f"Value must be at least {err.validator_value}."
    if v == "maximum":
        return f"Value must be at most {err.validator_value}."
    if v == "enum":
        return f"Value must be one of {err.validator_value}."
    if v == "pattern":
        return f"Value does not match the pattern {err.validator_value}."
    return err.message


def schema_errors(schema_name: str, payload: Any) -> dict[str, Any]:
    """The error tree of ``payload`` against the schema (empty when valid)."""
    tree: dict[str, Any] = {}
    for err in validator_for(schema_name).iter_errors(payload):
        path = list(err.absolute_path)
        prop = next((str(p) for p in reversed(path) if isinstance(p, str)), "")
        value = ... if err.validator == "required" else err.instance
        add_error(tree, path, error_item(SCHEMA_CODE, _message(err), prop, value))
    return tree
