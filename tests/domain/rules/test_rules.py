"""The booking rules' registry: each rule declares its check, name, severity and effect in one place."""

from __future__ import annotations

import pytest

from roger_economic import rules
from roger_economic.model import Finding
from roger_economic.rules import RULES, RULES_BY_NAME, Effect, Entry, Severity
from tests import factories as f


def test_every_rule_declares_its_check_name_severity_and_effect():
    assert len(RULES_BY_NAME) == len(RULES) == 21
    assert len({r.column for r in RULES}) == len(RULES)  # one column per rule
    for rule in RULES:
        assert rule.name and rule.description and rule.column and rule.value, rule
        assert isinstance(rule.severity, Severity) and isinstance(rule.entry, Entry), rule
        assert callable(rule.check) or rule.name == "unique_in_batch", rule  # judged across the batch
        assert (rule.severity is Severity.WARN) == (rule.effect is Effect.NONE), rule
    assert {r.effect for r in RULES} == set(Effect)


def test_a_prepared_bill_carries_every_rules_column_and_the_suite_one_expectation_per_rule():
    import great_expectations as gx

    from roger_economic.prepare import prepare
    from roger_economic.validation import _suite_expectations

    ctx = f.context()
    frame = prepare([(ctx.settings.id, f.bill())], {ctx.settings.id: ctx})
    checked = [r.column for r in RULES if r.check is not None]
    assert set(checked) <= set(frame.columns)
    assert set(frame.loc[0, checked]) <= {rules.OK, rules.NA}  # the world's good bill passes every rule
    suite = _suite_expectations(gx)
    assert [e.meta["rule"] for e in suite] == [r.name for r in RULES]


def _finding(rule: str) -> Finding:
    r = RULES_BY_NAME[rule]
    return Finding("agr_0001", "bill_1", 1, rule, str(r.severity), str(r.entry), None, "x")


@pytest.mark.parametrize(
    ("failing", "receipt", "booked"),
    [
        ((), False, (True, True)),
        (("due_after_issue",), False, (True, True)),  # a warning books both
        (("category_mapped",), False, (False, False)),  # an invoice stop holds its payment too
        (("payment_method_mapped",), False, (True, False)),  # a payment stop holds the payment only
        (("payment_method_mapped",), True, (False, False)),  # ... but a receipt is one event
    ],
)
def test_a_rules_effect_decides_which_entries_are_booked(failing, receipt, booked):
    assert rules.entries_to_book([_finding(name) for name in failing], receipt, needs_payment=True) == booked
