"""The nouns of the domain, each defined once: an agreement, a window of bills, a finding, a planned entry.

:class:`Agreement` is the one definition of an agreement's fields and their types. The agreements file
(:mod:`roger_economic.config`), the UI's setup form, the per-run context and the database code all read and
write it; the ``agreements`` table (:class:`roger_economic.db.models.Agreement`) stores exactly its
:data:`COLUMNS`, copied by :meth:`Agreement.from_row` and :meth:`Agreement.to_row`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

SupplierPolicy = Literal["create", "default", "quarantine"]
ClosedPeriodPolicy = Literal["quarantine", "next_open_date"]
SUPPLIER_POLICIES: tuple[str, ...] = get_args(SupplierPolicy)
CLOSED_PERIOD_POLICIES: tuple[str, ...] = get_args(ClosedPeriodPolicy)
TOKEN_REF_PREFIXES = ("env:", "conn:")


def _check_token_ref(value: str) -> str:
    prefix = next((p for p in TOKEN_REF_PREFIXES if value.startswith(p)), None)
    if prefix is None or not value[len(prefix) :].strip():
        raise PydanticCustomError("token_ref", "must be 'env:VARIABLE' or 'conn:CONNECTION_ID', never the token itself")
    return value


Number = Annotated[int, Field(ge=1)]
Key = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=255)]
# where a token lives, never the token: this project stores and logs references only
TokenRef = Annotated[str, Field(max_length=255), AfterValidator(_check_token_ref)]


class BookingPolicies(BaseModel):
    """How unclear bills are booked: the part of the setup the agreements file writes at its top level."""

    model_config = ConfigDict(strict=True, frozen=True)

    default_account: Number | None = None
    supplier_policy: SupplierPolicy = "quarantine"
    supplier_group: Number | None = None
    payment_terms: Number | None = None
    default_supplier: Number | None = None
    closed_period_policy: ClosedPeriodPolicy = "quarantine"
    book_without_attachment: bool = False


class Setup(BookingPolicies):
    """The booking setup as the UI's setup form edits it: the policies and the two journals."""

    invoice_journal: Number
    payment_journal: Number


class Agreement(Setup):
    """One e-conomic company paired with one Roger business account, its setup and its mapping tables.

    Built checked from the file or the form (pydantic, strict); built unchecked from a stored row
    (:meth:`from_row`: the database holds only what was checked on the way in).
    """

    id: Key
    name: Name
    active: bool = True
    roger_company_id: Key
    roger_token_ref: TokenRef
    economic_agreement_number: Number | None = None
    economic_token_ref: TokenRef
    categories: dict[Key, tuple[Number, str | None]] = {}  # Roger category → (account, VAT code)
    payment_methods: dict[Key, Number] = {}  # Roger payment method → account

    @classmethod
    def from_row(
        cls,
        row: Any,
        categories: dict[str, tuple[int, str | None]] | None = None,
        payment_methods: dict[str, int] | None = None,
    ) -> Agreement:
        """The agreement of a stored ``agreements`` row (and its mapping tables, when given)."""
        return cls.model_construct(
            **{name: getattr(row, name) for name in COLUMNS},
            categories=dict(categories or {}),
            payment_methods=dict(payment_methods or {}),
        )

    def to_row(self, row: Any) -> Any:
        """``row`` with this agreement's columns written into it (the mapping tables are the caller's)."""
        for name in COLUMNS:
            setattr(row, name, getattr(self, name))
        return row


MAPPINGS = ("categories", "payment_methods")  # stored in their own tables
COLUMNS: tuple[str, ...] = tuple(name for name in Agreement.model_fields if name not in MAPPINGS)
POLICY_FIELDS: tuple[str, ...] = tuple(BookingPolicies.model_fields)
SETUP_FIELDS: tuple[str, ...] = (
    *(n for n in Setup.model_fields if n not in BookingPolicies.model_fields),
    *POLICY_FIELDS,
)


@dataclass(frozen=True)
class Window:
    """The span of Roger's ``updated_at`` one extract reads: ``[since, before)``; ``None`` is open."""

    since: str | None
    before: str | None

    def label(self) -> str:
        return f"[{self.since or '-∞'}, {self.before or 'now'})"


@dataclass(frozen=True)
class Finding:
    """One booking rule a bill (or one of its entries) fails, with the offending value."""

    agreement_id: str
    bill_id: str
    version: int | None
    rule: str
    severity: str  # stop | warn
    entry: str  # invoice | payment
    value: str | None
    message: str


@dataclass
class PlannedEntry:
    """One voucher to post: a supplier invoice or a supplier payment of one bill version."""

    agreement_id: str
    bill_id: str
    version: int
    kind: str  # invoice | payment
    journal: int
    year: str
    voucher: dict[str, Any]
    vendor: dict[str, Any] = field(default_factory=dict)  # for creating the supplier under 'create'
    has_document: bool = False

    @property
    def entry(self) -> dict[str, Any]:
        entries = self.voucher["entries"]
        return (entries.get("supplierInvoices") or entries.get("supplierPayments"))[0]


@dataclass
class BillOutcome:
    """What judging one bill version came to, with the findings that decided it."""

    agreement_id: str
    bill_id: str
    version: int | None
    state: str  # planned | quarantined | waiting | withdraw
    findings: list[Finding]
