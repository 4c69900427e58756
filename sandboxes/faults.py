"""Faults on demand, shared by both sandboxes.

A test arms a rule through the sandbox's control endpoint
(``POST /_control/faults`` with a rule as JSON); the sandbox asks ``take()`` on
every request and acts out the fault the rule names. Rules are scoped to one
agreement (e-conomic agreement number or Roger company id, as a string) or
``*``, to a method and to a path regex, and fire ``times`` times (-1: until
cleared) with a seeded probability, so a random mix is reproducible.

Kinds:
- ``status``: answer ``status`` (429 carries ``Retry-After: retry_after``: seconds, or an HTTP date
  such as ``Wed, 21 Oct 2026 07:28:00 GMT``, both forms RFC 9110 allows) without processing.
- ``slow``: sleep ``delay`` seconds, then process normally (a client timeout shorter than
  ``delay`` sees a timeout).
- ``reset``: close the connection before the request is processed.
- ``lost_answer``: process and commit the request, then close the connection without answering.
- ``drip``: process the request, then send the answer (status line, headers, body) one byte every
  ``delay`` seconds: each read gets a byte in time, so only a deadline for the whole call ends it.
- ``echo``: answer ``status`` with an error body that echoes the request's headers (tokens included)
  and its query string, as a careless proxy or debug page does, without processing.
- ``junk``: process and commit the request, then answer 200 with a list of objects that are not what
  was asked for (one per item sent): the answer is there, but unusable.
- ``malformed`` (Roger): one bill record in the page is broken: its ``amount`` removed, or, with
  ``bill_field`` (a dotted path such as ``payment.method_id``), that field set to ``value`` (any JSON) or to
  ``raw``, JSON text put in verbatim (``"1e9"``: a JSON number where the contract says a string).
- ``page_fail`` (Roger): a page after the first answers 500 (the walk fails midway).
- ``repeat_cursor`` (Roger): a page asked for with a cursor answers that same cursor as its
  ``next_cursor`` (a feed that loops on one page while the rule lasts).
- ``endless`` (Roger): every page answers a fresh ``next_cursor``, also past the last bill (pages
  after it are empty): a feed that never ends while the rule lasts.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = frozenset(
    {
        "status",
        "slow",
        "reset",
        "lost_answer",
        "drip",
        "echo",
        "junk",
        "malformed",
        "page_fail",
        "repeat_cursor",
        "endless",
    }
)


@dataclass
class FaultRule:
    kind: str
    status: int = 503
    retry_after: int | str | None = None
    scope: str = "*"
    method: str = "*"
    path: str = ""
    times: int = 1
    probability: float = 1.0
    delay: float = 0.0
    bill_field: str = ""  # malformed: the dotted path of the field to break (none: amount is removed)
    value: Any = None  # malformed: what that field becomes
    raw: str = ""  # malformed: JSON text that field becomes, verbatim (wins over value)
    fired: int = field(default=0)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        rule = cls(**data)
        if rule.kind not in KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; one of {sorted(KINDS)}")
        rule.scope = str(rule.scope)
        return rule

    def matches(self, scope: str, method: str, path: str) -> bool:
        return (
            self.times != 0
            and self.scope in ("*", scope)
            and self.method in ("*", method)
            and (not self.path or re.search(self.path, path) is not None)
        )


class FaultBook:
    """Thread-safe set of armed rules; the first matching rule that fires wins."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.log: list[dict[str, Any]] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self, seed: int | None = None) -> None:
        with self._lock:
            self._rules.clear()
            self.log.clear()
            if seed is not None:
                self._random = random.Random(seed)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def take(self, scope: str, method: str, path: str, kinds: frozenset[str] | None = None) -> FaultRule | None:
        """The rule to act out for this request, if any (its count is used up by one)."""
        with self._lock:
            for rule in self._rules:
                if kinds is not None and rule.kind not in kinds:
                    continue
                if not rule.matches(scope, method, path):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.times > 0:
                    rule.times -= 1
                rule.fired += 1
                self.log.append({"kind": rule.kind, "scope": scope, "method": method, "path": path})
                return rule
        return None
