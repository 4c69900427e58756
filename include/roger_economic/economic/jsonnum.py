"""JSON with exact decimals: a ``Decimal`` is written as the number it is, never via float."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

_MARK = "\u0000dec:"
_MARKED = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _decimals_as_text(obj: Any, prefix: str) -> Any:
    """``obj`` with every ``Decimal`` as ``prefix`` + its exact digits.

    Plain values are passed by without a call (a night plans and posts thousands of vouchers).
    """
    kind = type(obj)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _decimals_as_text(v, prefix) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else _decimals_as_text(v, prefix) for v in obj]
    if isinstance(obj, Decimal):
        return f"{prefix}{obj:f}"
    if isinstance(obj, dict):
        return {k: _decimals_as_text(v, prefix) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_decimals_as_text(v, prefix) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    marked = _decimals_as_text(obj, _MARK)  # marked strings, unquoted back into numbers below
    return _MARKED.sub(r"\1", json.dumps(marked, ensure_ascii=False, separators=(",", ":")))


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def to_plain(obj: Any) -> Any:
    """For storing a payload as JSON in the database: decimals become exact strings."""
    return _decimals_as_text(obj, "")
