from decimal import Decimal

from roger_economic import transform, validation
from roger_economic.prepare import prepare
from tests import factories as f


def book(bills, ctx=None):
    ctx = ctx or f.context()
    frame = prepare([(ctx.settings.id, b) for b in bills], {ctx.settings.id: ctx})
    findings = validation.run(frame)
    entries, outcomes = transform.build(frame, findings, {ctx.settings.id: ctx})
    return entries, outcomes, findings


def test_paid_bill_gives_invoice_and_payment():
    entries, outcomes, findings = book([f.paid()])
    assert [e.kind for e in entries] == ["invoice", "payment"]
    inv = entries[0].entry
    assert inv["amount"] == Decimal("-1250.00")
    assert inv["supplier"] == {"supplierNumber": 1}
    pay = entries[1].entry
    assert pay["amount"] == Decimal("1250.00")
    assert pay["contraAccount"] == {"accountNumber": 5820}
