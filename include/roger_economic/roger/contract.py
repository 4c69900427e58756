"""Every Roger record judged against Roger's contract (``openapi.yaml``'s ``Bill`` schema), by jsonschema.

Why here and not in the booking rules: a record whose fields have the wrong JSON types (a list where
the contract says a string, a JSON number where it says a decimal string) cannot be reasoned about at
all, and hashing or comparing such values crashed the whole group's validation. So every record is
judged once, when it is read (while the JSON numbers are still ``Decimal`` and not yet stored as
text), and what breaks the contract is stored with the staged bill under :data:`KEY`; preparation then
shows such a bill only as its breaks, and it is quarantined on its own (rule ``roger_contract``).

The contract is this package's copy of ``../shared/roger-api/openapi.yaml`` (a test checks they are
the same). It is OpenAPI 3.1, whose schemas are JSON Schema 2020-12 (``type: [string, "null"]``, not
3.0's ``nullable``), so the validator is jsonschema's 2020-12 one, compiled once per process, with the
document's ``$ref``s resolved inside the document. ``format: date`` is checked; ``date-time`` is not
(jsonschema needs an extra package for it, and no date-time field decides a booking).
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from roger_economic.economic.jsonnum import dumps, to_plain
from roger_economic.errors import ConfigError

CONTRACT = Path(__file__).resolve().parent / "openapi.yaml"
KEY = "_roger_contract"  # the breaks stored with a staged bill (a Roger record's own key of this name is replaced)
SHOWN_MAX = 80  # characters of an offending value kept in a message
BREAKS_SHOWN = 5  # breaks named in one message
MAX_VERSION = 2**31 - 1  # what the staging table's integer column holds
MAX_ID = 64  # what the staging table's bill id column holds
PAGE = "page of the bill feed"  # the /bills answer's own schema, its records left to the Bill schema
_URI = "urn:roger-economic:roger-openapi"


@cache
def document() -> dict[str, Any]:
    import yaml

    with CONTRACT.open(encoding="utf-8") as handle:
        doc = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml's, when built in
    if not str(doc.get("openapi", "")).startswith("3.1"):
        raise ConfigError(f"{CONTRACT}: OpenAPI {doc.get('openapi')!r}; this judge reads 3.1 (JSON Schema 2020-12)")
    return doc


def _page_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``/bills`` answer's schema with its records unconstrained: each record is judged on its own
    (one bad record must not fail its page), the page only for ``data`` and ``next_cursor``."""
    answer = doc["paths"]["/companies/{company_id}/bills"]["get"]["responses"]["200"]
    schema = copy.deepcopy(answer["content"]["application/json"]["schema"])
    schema["properties"]["data"].pop("items", None)
    return schema


@cache
def validator(schema: str = "Bill") -> Any:
    """The compiled validator of a contract schema (a component's name, or :data:`PAGE`), once per process."""
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    doc = document()
    registry = Registry().with_resource(_URI, DRAFT202012.create_resource(doc))
    target = _page_schema(doc) if schema == PAGE else doc["components"]["schemas"][schema]
    Draft202012Validator.check_schema(target)
    if schema != PAGE:
        target = {"$ref": f"{_URI}#/components/schemas/{schema}"}  # its own $refs resolve inside the document
    return Draft202012Validator(target, registry=registry, format_checker=FormatChecker(formats=("date",)))


def shown(value: Any) -> str:
    """An offending value as JSON text (a ``Decimal`` as the number it was), escaped and cut short."""
    try:
        text = dumps(value)
    except (TypeError, ValueError):
        text = json.dumps(str(value))
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 1] + "…"


def _dotted(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(record)"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float | Decimal):
        return "a JSON number"
    if value is None:
        return "null"
    names: dict[type, str] = {dict: "a JSON object", list: "a JSON array", str: "a JSON string"}
    return names.get(type(value), "not JSON")


def _problem(error: Any) -> str:
    kind, expected = error.validator, error.validator_value
    if kind == "type":
        names = expected if isinstance(expected, list) else [expected]
        return f"is {_json_type(error.instance)}, the contract says {' or '.join(map(str, names))}"
    if kind == "enum":
        return "is not one of " + ", ".join(map(str, expected))
    if kind == "pattern":
        return f"does not match {expected}"
    if kind == "format":
        return f"is not a {expected}"
    if kind == "minimum":
        return f"is below {expected}"
    return f"breaks {kind} {shown(expected)}"


def breaks(record: Any, schema: str = "Bill") -> list[dict[str, str | None]]:
    """What of ``record`` breaks the contract: ``[{"path", "value", "problem"}]``, by path; ``[]`` when it holds.

    ``record`` is the record as parsed from the wire (JSON numbers as ``Decimal``). A missing required
    field is named by its own path (``payment.method_id``), with no value.
    """
    found: list[dict[str, str | None]] = []
    for error in validator(schema).iter_errors(record):
        if error.validator == "required" and isinstance(error.instance, dict):
            for name in error.validator_value:
                if name not in error.instance:
                    found.append(
                        {"path": _dotted([*error.absolute_path, name]), "value": None, "problem": "is missing"}
                    )
            continue
        found.append({"path": _dotted(error.absolute_path), "value": shown(error.instance), "problem": _problem(error)})
    unique = {(b["path"], b["problem"]): b for b in found}  # a missing field is reported once per required list
    return sorted(unique.values(), key=lambda b: (b["path"] or "", b["problem"] or ""))


def message(found: list[dict[str, Any]]) -> str:
    """The breaks as one line: ``amount 1000000000 is a JSON number, the contract says string; …``."""
    parts = [" ".join(p for p in (b["path"], b["value"], b["problem"]) if p) for b in found[:BREAKS_SHOWN]]
    more = f"; and {len(found) - BREAKS_SHOWN} more" if len(found) > BREAKS_SHOWN else ""
    return "breaks the Roger contract: " + "; ".join(parts) + more


def value(found: list[dict[str, Any]]) -> str:
    """The first break's path and offending value (the quarantine record's ``value``)."""
    first = found[0]
    return f"{first['path']}={first['value']}" if first["value"] is not None else f"{first['path']} (missing)"


def usable(record: Any) -> bool:
    """Whether a record can be held per bill at all: an id and a version the staging table can keep.

    (Anything else about it, e.g. a version below 1, is for the contract judgement to report.)
    """
    if not isinstance(record, dict):
        return False
    bill_id, version = record.get("id"), record.get("version")
    return (
        isinstance(bill_id, str)
        and 0 < len(bill_id) <= MAX_ID
        and isinstance(version, int)
        and not isinstance(version, bool)
        and 0 <= version <= MAX_VERSION
    )


def named(record: Any, position: int) -> str:
    """How the report names a record that cannot be held: its place in the feed, and its id and version as sent."""
    if not isinstance(record, dict):
        return f"record {position} ({shown(record)[:40]})"
    return f"record {position} (id {shown(record.get('id'))[:40]}, version {shown(record.get('version'))[:20]})"


def judged(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as it is stored: decimals as exact text, and its breaks (``[]`` if none) under :data:`KEY`."""
    plain = {k: v for k, v in record.items() if k != KEY}
    return {**to_plain(plain), KEY: breaks(plain)}


def ensure_judged(payload: dict[str, Any]) -> dict[str, Any]:
    """A stored payload with its judgement (one staged before records were judged is judged now)."""
    return payload if isinstance(payload.get(KEY), list) else judged(payload)
