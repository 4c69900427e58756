"""What a booking rule is: a check of one bill, its name, its severity and what a failure does to the bill."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roger_economic.context import AgreementContext

OK, NA = "ok", "n/a"  # what a check says when the rule holds, and when it does not apply to the bill

Bill = dict[str, Any]  # one prepared bill: Roger's values, the mappings joined in, the look-ups resolved
Check = Callable[[Bill, "AgreementContext"], str]


class Severity(StrEnum):
    STOP = "stop"  # the entry it guards is not booked
    WARN = "warn"  # booked as it is; the finding is shown


class Entry(StrEnum):
    INVOICE = "invoice"
    PAYMENT = "payment"


class Effect(StrEnum):
    HOLD_BILL = "hold_bill"  # a stop on the invoice: neither entry is booked (a payment needs its invoice)
    HOLD_PAYMENT = "hold_payment"  # a stop on the payment: the invoice is booked, the payment waits
    NONE = "none"  # a warning


@dataclass(frozen=True)
class Rule:
    """One booking rule. ``check`` writes ``column`` (``ok``, ``n/a`` or what is wrong); ``value`` names the
    column holding the offending value. A rule without ``check`` is judged across the batch (``unique``)."""

    name: str
    severity: Severity
    entry: Entry
    column: str
    value: str
    description: str
    check: Check | None = None  # None: the column must be unique across the batch

    @property
    def effect(self) -> Effect:
        if self.severity is Severity.WARN:
            return Effect.NONE
        return Effect.HOLD_BILL if self.entry is Entry.INVOICE else Effect.HOLD_PAYMENT

    def expectation(self, gx: Any) -> Any:
        """The Great Expectations expectation that judges this rule over a whole frame."""
        meta = {"rule": self.name}
        if self.check is None:
            return gx.expectations.ExpectColumnValuesToBeUnique(
                column=self.column, meta=meta, description=self.description
            )
        return gx.expectations.ExpectColumnValuesToBeInSet(
            column=self.column, value_set=[OK, NA], meta=meta, description=self.description
        )


def rule(name: str, severity: Severity, entry: Entry, column: str, value: str) -> Callable[[Check], Rule]:
    """Declare a rule on its check, in :class:`Rule`'s field order: ``@rule(name, severity, entry, column, value)``
    above ``def check(bill, ctx)``, whose docstring's first paragraph is the rule's description (shown with a
    finding and in the Great Expectations suite); the rest of the docstring says why."""

    def declare(check: Check) -> Rule:
        if not check.__doc__:
            raise TypeError(f"rule {name}: its check needs a docstring (the rule's description)")
        description = " ".join(inspect.cleandoc(check.__doc__).split("\n\n")[0].split()).removesuffix(".")
        return Rule(name, severity, entry, column, value, description, check)

    return declare


def placed(applies: bool, placement: str | None, what: str) -> str:
    """A date rule's finding: ``n/a`` where the entry is not booked, ``ok`` when the date lies in an open year and
    period, else why it does not (``placement``, as :mod:`roger_economic.prepare` placed the date)."""
    if not applies:
        return NA
    return OK if placement is None else f"{what} {placement}"


def booking(bill: Bill) -> bool:
    """Whether the bill asks to be booked (a waiting or withdrawn bill is judged by no rule)."""
    return bool(bill["action"] == "book")
