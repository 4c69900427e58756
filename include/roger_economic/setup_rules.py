"""The setup rules, worded once: what an agreement's setup needs before its bills can be booked.

One function, :func:`problems`, serves the agreements file (:mod:`roger_economic.config`), the UI's setup
form, the mapping gaps of the master-data refresh (:func:`roger_economic.masterdata.mapping_gaps`) and the
reason a run stops an agreement (:meth:`roger_economic.context.AgreementContext.stop_reason`). Each caller
asks what it can know (the file has no master data; the form knows its mappings) and keeps the kinds of
problem it acts on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from roger_economic.masterdata import has_scanning, journal_problem
from roger_economic.model import SETUP_FIELDS


class Kind(StrEnum):
    POLICY = "policy"  # a supplier policy without what it needs
    MASTER_DATA = "master_data"  # nothing fetched from e-conomic yet
    JOURNAL = "journal"  # a journal missing, or restricted to the other entry type
    MAPPING = "mapping"  # neither a category mapping nor a default account
    SCANNING = "scanning"  # no scanning add-on, and booking without the PDF not allowed


@dataclass(frozen=True)
class Problem:
    kind: Kind
    field: str  # the setup field it is about
    item: str  # what it names: a journal's number; "*" for the setup as a whole
    message: str


NEEDS = {  # field names, which the UI shows by their labels
    "create": "supplier_policy 'create' needs supplier_group and payment_terms",
    "default": "supplier_policy 'default' needs default_supplier",
}
NO_MAPPING = "no category is mapped and there is no default account: map a category or choose a default account"
NO_MASTER_DATA = "no master data yet: refresh the master data (roger_master_data) for this agreement"
NO_SCANNING = (
    "the e-conomic agreement lacks the scanning add-on (Indscanning) and book_without_attachment "
    "is off: enable the add-on or allow booking without the PDF"
)
JOURNAL_ENTRY_TYPES = {"invoice_journal": "supplierInvoice", "payment_journal": "supplierPayment"}
STOP_KINDS = ("accounts", "journals", "self")  # the only master data :func:`problems` sees (``self``: its modules)


def values_of(setup: Any) -> dict[str, Any]:
    """The setup fields of an agreement (the model, a stored row) as the rules read them."""
    return {name: getattr(setup, name) for name in SETUP_FIELDS}


def problems(
    setup: Mapping[str, Any], *, mapped: bool | None = None, snapshots: dict[str, Any] | None = None
) -> list[Problem]:
    """What stops the setup ``setup`` (its :data:`~roger_economic.model.SETUP_FIELDS`), in the order a run meets it.

    The policy rules always apply; the mapping rule when ``mapped`` (is any category mapped?) is known;
    the master-data rules (master data present, journals, the scanning add-on) when ``snapshots`` are given.
    A value not given (``None``) is not judged here: "is required" is the schema's word.
    """
    found: list[Problem] = []
    policy = setup.get("supplier_policy")
    if policy == "create" and (setup.get("supplier_group") is None or setup.get("payment_terms") is None):
        found.append(Problem(Kind.POLICY, "supplier_policy", "*", NEEDS["create"]))
    if policy == "default" and setup.get("default_supplier") is None:
        found.append(Problem(Kind.POLICY, "supplier_policy", "*", NEEDS["default"]))
    if snapshots is not None:  # the rules see no other kind: a quiet night's check loads only these
        snapshots = {kind: snapshots[kind] for kind in STOP_KINDS if kind in snapshots}
        accounts = [a for a in snapshots.get("accounts") or [] if "accountNumber" in a]
        journals = {j["journalNumber"]: j for j in snapshots.get("journals") or [] if "journalNumber" in j}
        if not accounts or not journals:
            found.append(Problem(Kind.MASTER_DATA, "*", "*", NO_MASTER_DATA))
        for name, entry_type in JOURNAL_ENTRY_TYPES.items():
            number = setup.get(name)
            problem = journal_problem(journals, number, entry_type) if number is not None else None
            if problem:
                found.append(Problem(Kind.JOURNAL, name, str(number), problem))
    if mapped is False and setup.get("default_account") is None:
        found.append(Problem(Kind.MAPPING, "default_account", "*", NO_MAPPING))
    if snapshots is not None and not setup.get("book_without_attachment") and not has_scanning(snapshots):
        found.append(Problem(Kind.SCANNING, "book_without_attachment", "*", NO_SCANNING))
    return found
