"""JSON with exact decimals: a ``Decimal`` is written as the number it is, never via float."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

_MARK = "\u0000dec:"
_MARKED = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _mark(obj: Any) -> Any:
    """Decimals as marked strings; plain values are passed by without a call (a batch has thousands)."""
    kind = type(obj)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _mark(v) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else _mark(v) for v in obj]
    if isinstance(obj, Decimal):
        return f"{_MARK}{obj:f}"
    if isinstance(obj, dict):
        return {k: _mark(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_mark(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return _MARKED.sub(r"\1", json.dumps(_mark(obj), ensure_ascii=False, separators=(",", ":")))


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def to_plain(obj: Any) -> Any:
    """For storing a payload as JSON in the database: decimals become exact strings.

    Plain values are passed by without a call (a night plans thousands of vouchers).
    """
    kind = type(obj)
    if kind is dict:
        return {k: v if type(v) in _SCALARS else to_plain(v) for k, v in obj.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else to_plain(v) for v in obj]
    if isinstance(obj, Decimal):
        return f"{obj:f}"
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
