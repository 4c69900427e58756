"""Bills into one pandas frame, joined with each agreement's mappings and master data.

One row per bill: the resolved values (contra account, VAT code, supplier,
booking dates and years), and beside them one column per booking rule
(:mod:`roger_economic.rules`) that reads ``ok`` (or ``n/a``) when the rule
holds and otherwise says what is wrong. Validation then checks the columns;
the transform reads the resolved values. Call with all agreements of a group at once: one
frame, one validation.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from roger_economic import payment_codes, rules
from roger_economic.context import AgreementContext, vendor_key
from roger_economic.money import exchange_rate, parse_amount
from roger_economic.roger import contract
from roger_economic.rules.record import parse_day
from roger_economic.states import BillState

WAITING = frozenset({"ANALYZING", "AWAITING_APPROVAL", "PENDING"})
OPEN = frozenset({"UPCOMING", "INITIALIZED"})


def _columns(*table: str) -> dict[str, tuple[str, ...]]:
    """``column:path`` words (a dotted path into the Roger bill; a lone word is both) to {column: path}."""
    pairs = (word.partition(":") for line in table for word in line.split())
    return {column: tuple((path or column).split(".")) for column, _, path in pairs}


# the frame's columns, in order, and where in the Roger bill each is read
FIELDS = _columns(
    "bill_id:id version status deleted document_type",
    "vendor_name:vendor.name vendor_cvr:vendor.cvr vendor_country:vendor.country",
    "currency amount_raw:amount vat_raw:vat_amount issue_date_raw:issue_date due_date_raw:due_date",
    "category_id invoice_number payment_code",
    "method_id:payment.method_id paid_date_raw:payment.paid_date pay_amount_raw:payment.amount",
    "pay_currency:payment.currency pay_base_raw:payment.amount_base_currency has_document",
)


def _dig(bill: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = bill
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _text_or_none(value: Any) -> str | None:
    """A free-text field trimmed; blank means absent."""
    text = str(value).strip() if value is not None else ""
    return text or None


def flatten(bills: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """(agreement_id, Roger bill) pairs as a frame of raw columns, whatever shape the records have.

    A bill judged to break the Roger contract (its breaks stored with it, see
    :mod:`roger_economic.roger.contract`) is only its id, version and breaks: none of its values
    reach a column that compares or hashes them (a list there crashed the whole group).
    """
    rows = []
    for agreement_id, bill in bills:
        broken = bill.get(contract.KEY) or []
        if broken:
            row = dict.fromkeys(FIELDS) | {"bill_id": bill.get("id"), "version": bill.get("version")}
        else:
            row = {col: _dig(bill, path) for col, path in FIELDS.items()}
        row["agreement_id"] = agreement_id
        row["has_payment"] = not broken and isinstance(bill.get("payment"), dict)
        row["contract_break"] = contract.message(broken) if broken else None
        row["contract_value"] = contract.value(broken) if broken else None
        rows.append(row)
    frame = pd.DataFrame(
        rows, columns=["agreement_id", *FIELDS, "has_payment", "contract_break", "contract_value"], dtype=object
    )
    frame["row_key"] = [f"{a}|{b}|{i}" for i, (a, b) in enumerate(zip(frame.agreement_id, frame.bill_id, strict=True))]
    return frame


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts of plain Python values: ``to_dict("records")`` boxes every cell one by
    one, a large part of a group's validation; column lists zipped give the same values far cheaper."""
    columns = list(frame.columns)
    cells = [frame[c].tolist() for c in columns]  # each as long as the frame
    return [dict(zip(columns, values, strict=True)) for values in zip(*cells, strict=True)]


def action_of(status: Any, deleted: Any, document_type: Any) -> str:
    """book | waiting | withdraw: what a bill asks for, before any rule is checked."""
    if deleted is True or status == "DUPLICATE":
        return BillState.WITHDRAW
    if status in WAITING:
        return BillState.WAITING
    if status in OPEN or status == "PAID":
        return "book"
    return BillState.WAITING if status is None else BillState.WITHDRAW


def prepare(bills: list[tuple[str, dict[str, Any]]], contexts: dict[str, AgreementContext]) -> pd.DataFrame:
    frame = flatten(bills)
    frame["action"] = [
        action_of(s, d, t) for s, d, t in zip(frame.status, frame.deleted, frame.document_type, strict=True)
    ]
    broken = frame.contract_break.notna()
    frame.loc[broken, "action"] = "book"  # judged like a bill to book, so that it is quarantined, never skipped
    frame["invoice_number"] = frame.invoice_number.map(_text_or_none)
    frame["amount"] = frame.amount_raw.map(parse_amount)
    frame["vat_amount"] = frame.vat_raw.map(parse_amount)
    frame["pay_amount"] = frame.pay_amount_raw.map(parse_amount)
    frame["pay_base"] = frame.pay_base_raw.map(parse_amount)
    frame["issue_date"] = frame.issue_date_raw.map(parse_day)
    frame["due_date"] = frame.due_date_raw.map(parse_day)
    frame["paid_date"] = frame.paid_date_raw.map(parse_day)
    frame["is_receipt"] = frame.document_type.eq("receipt")
    # A payment entry is due for PAID bills and receipts, and for credit notes only when Roger shows one.
    frame["needs_payment"] = frame.action.eq("book") & (
        frame.is_receipt | (frame.status.eq("PAID") & (frame.document_type.ne("credit_note") | frame.has_payment))
    )
    frame["vendor_key"] = [vendor_key(n, c) for n, c in zip(frame.vendor_name, frame.vendor_cvr, strict=True)]
    frame = _join_mappings(frame, contexts)
    resolved = [_resolve_row(row, contexts[row["agreement_id"]]) for row in records(frame)]
    extra = pd.DataFrame(resolved, index=frame.index, dtype=object)
    return pd.concat([frame, extra], axis=1)


def _join_mappings(frame: pd.DataFrame, contexts: dict[str, AgreementContext]) -> pd.DataFrame:
    """Category and payment-method mappings joined in as columns (a merge per table, not per bill)."""
    cat_rows = [
        {"agreement_id": aid, "category_id": cat, "mapped_account": acc, "mapped_vat": vat}
        for aid, ctx in contexts.items()
        for cat, (acc, vat) in ctx.categories.items()
    ]
    cats = pd.DataFrame(cat_rows, columns=["agreement_id", "category_id", "mapped_account", "mapped_vat"], dtype=object)
    method_rows = [
        {"agreement_id": aid, "method_id": m, "pay_account": acc}
        for aid, ctx in contexts.items()
        for m, acc in ctx.methods.items()
    ]
    methods = pd.DataFrame(method_rows, columns=["agreement_id", "method_id", "pay_account"], dtype=object)
    defaults = pd.DataFrame(
        [{"agreement_id": aid, "default_account": ctx.settings.default_account} for aid, ctx in contexts.items()],
        columns=["agreement_id", "default_account"],
        dtype=object,
    )
    out = frame.merge(cats, on=["agreement_id", "category_id"], how="left")
    out = out.merge(methods, on=["agreement_id", "method_id"], how="left")
    out = out.merge(defaults, on="agreement_id", how="left")
    out.index = frame.index
    return out.astype(object).where(out.notna(), None)


def _resolve_row(row: dict[str, Any], ctx: AgreementContext) -> dict[str, Any]:
    """The per-agreement look-ups (accounts, VAT, supplier, dates), then what each rule says of them."""
    out: dict[str, Any] = {}
    book = row["action"] == "book"
    policy = ctx.settings.closed_period_policy
    # contra account: the category's account, else (no category, or unmapped) the default account.
    contra: int | None
    if row["mapped_account"] is not None:
        contra, source = int(row["mapped_account"]), "category"
    else:
        contra, source = (int(row["default_account"]) if row["default_account"] is not None else None), "default"
    out["contra_account"], out["contra_source"] = contra, source
    # VAT: the category's code, else the contra account's own VAT account, else none.
    vat_code = row["mapped_vat"] if source == "category" and row["mapped_vat"] else None
    if vat_code is None and contra is not None:
        vat_code = ((ctx.accounts.get(contra) or {}).get("vatAccount") or {}).get("vatCode")
    out["vat_code"] = vat_code
    out["vat_to_send"] = row["vat_amount"] if vat_code else None
    out["vat_rate"] = ctx.vat_rates.get(vat_code) if vat_code else None
    # invoice date: the issue date (a receipt's: the payment date), placed in an open year.
    base_day = row["paid_date"] if row["is_receipt"] and row["paid_date"] else row["issue_date"]
    out["invoice_day"] = base_day  # the date asked for, before any move (the offending value when it is closed)
    out.update(_placement("invoice", base_day, ctx, policy, book))
    out["supplier_number"], out["supplier_how"] = ctx.supplier_for(row["vendor_name"], row["vendor_cvr"])
    code = payment_codes.parse(row["payment_code"], row["invoice_number"] or row["vendor_name"])
    out["payment_details"], out["payment_code_warning"] = code.details, code.warning
    out["payment_type_number"] = payment_codes.type_number(code.details)
    out.update(_payment_values(row, ctx, policy))
    out.update(rules.judge({**row, **out}, ctx))
    return out


def _placement(kind: str, day: date | None, ctx: AgreementContext, policy: str, active: bool) -> dict[str, Any]:
    """The entry's booking date and year; ``{kind}_placement`` says why there is none (a closed period)."""
    if not active or day is None:
        return {f"{kind}_date": day, f"{kind}_year": None, f"{kind}_placement": None}
    placed = ctx.calendar.place(day, policy)
    problem = placed.problem if placed.date is None else None
    return {f"{kind}_date": placed.date, f"{kind}_year": placed.year, f"{kind}_placement": problem}


def _payment_values(row: dict[str, Any], ctx: AgreementContext, policy: str) -> dict[str, Any]:
    if not row["needs_payment"]:
        return {"payment_date": None, "payment_year": None, "payment_placement": None, "exchange_rate": None}
    out = _placement("payment", row["paid_date"], ctx, policy, True)
    rate = None
    amount, base, pay_currency = row["pay_amount"], row["pay_base"], row["pay_currency"]
    if (
        amount
        and base
        and amount > 0
        and base > 0
        and pay_currency == row["currency"]
        and pay_currency != ctx.base_currency
    ):
        rate = exchange_rate(amount, base)
    out["exchange_rate"] = rate
    return out
