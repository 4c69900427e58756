"""Agreements and their mapping tables: the database is the one source of truth, a YAML file feeds it.

A firm describes its client agreements in a file (see ``config/agreements.example.yaml``, documented in the
README). Tokens are never written in it: ``token: env:VAR`` or ``token: conn:AIRFLOW_CONN_ID`` name where the
secret lives.

The file is checked by one schema (:class:`AgreementSpec`, pydantic, strict): an unknown key is refused with
the closest known key suggested, a boolean is only ``true``/``false``, a number only an integer. The YAML reader
refuses duplicate keys, anchors and aliases (an alias bomb fails on its first anchor). Two agreements on the same
Roger company or the same e-conomic agreement would book every bill twice: refused, within the file and against
the database. The UI checks a saved setup with the same rules (:class:`SetupFields`).

Since the UI edits agreements too, a load never overwrites the database behind its back: it ADDS new
agreements; an existing one that differs is reported ("differs, not changed") and changed only with
``--replace``, after its difference is printed. Agreements in the database but not in the file are listed,
and deactivated only with ``--deactivate-missing``. ``export`` writes the database's setup back to a file
that loads unchanged. Every change a load makes is written to ``setup_audit`` (:func:`record`, who:
``cli:<OS user>``, what before → after) and shown on the agreement's page with the UI's own saves.

``python -m roger_economic.config load FILE [--replace] [--deactivate-missing]``
``python -m roger_economic.config export FILE``
``python -m roger_economic.config import-csv FILE [--invoice-journal N --payment-journal N] [--dry-run]``
(many clients at once, a result per row: :mod:`roger_economic.csv_import`)
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from roger_economic import credentials
from roger_economic.db import models
from roger_economic.errors import ConfigError

SUPPLIER_POLICIES = ("create", "default", "quarantine")
CLOSED_PERIOD_POLICIES = ("quarantine", "next_open_date")
TOKEN_REF_PREFIXES = ("env:", "conn:")
AGREEMENT_COLUMNS = (
    "name", "active", "roger_company_id", "roger_token_ref", "economic_agreement_number", "economic_token_ref",
    "invoice_journal", "payment_journal", "default_account", "supplier_policy", "supplier_group", "payment_terms",
    "default_supplier", "closed_period_policy", "book_without_attachment",
)  # fmt: skip
TOKEN_FIELDS = ("token", "grant_token")  # their input is never echoed in an error: it may be a token by mistake


@dataclass
class AgreementConfig:
    id: str
    name: str
    roger_company_id: str
    roger_token_ref: str
    economic_token_ref: str
    invoice_journal: int
    payment_journal: int
    economic_agreement_number: int | None = None
    default_account: int | None = None
    supplier_policy: str = "quarantine"
    supplier_group: int | None = None
    payment_terms: int | None = None
    default_supplier: int | None = None
    closed_period_policy: str = "quarantine"
    book_without_attachment: bool = False
    active: bool = True
    categories: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    payment_methods: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ the schema


def _check_token_ref(value: str) -> str:
    prefix = next((p for p in TOKEN_REF_PREFIXES if value.startswith(p)), None)
    if prefix is None or not value[len(prefix) :].strip():
        raise PydanticCustomError("token_ref", "must be 'env:VARIABLE' or 'conn:CONNECTION_ID', never the token itself")
    return value


Number = Annotated[int, Field(ge=1)]
TokenRef = Annotated[str, Field(max_length=255), AfterValidator(_check_token_ref)]
Key = Annotated[str, Field(min_length=1, max_length=64)]


def unknown_key_message(key: Any, known: list[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
    return f"unknown key '{key}'{hint}"


class _Strict(BaseModel):
    """No unknown keys (the closest known one is suggested), no coercion: ``"false"`` is not a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = list(cls.model_fields)
            unknown = [k for k in data if k not in cls.model_fields]
            if unknown:
                raise PydanticCustomError("unknown_key", "; ".join(unknown_key_message(k, known) for k in unknown))
        return data


class SetupRules(_Strict):
    """The booking setup of an agreement, the part both the file and the UI's setup page edit."""

    default_account: Number | None = None
    supplier_policy: Literal[SUPPLIER_POLICIES] = "quarantine"  # type: ignore[valid-type]
    supplier_group: Number | None = None
    payment_terms: Number | None = None
    default_supplier: Number | None = None
    closed_period_policy: Literal[CLOSED_PERIOD_POLICIES] = "quarantine"  # type: ignore[valid-type]
    book_without_attachment: bool = False

    @model_validator(mode="after")
    def _policy_needs(self) -> SetupRules:
        if self.supplier_policy == "create" and (self.supplier_group is None or self.payment_terms is None):
            raise PydanticCustomError("policy", "supplier_policy 'create' needs supplier_group and payment_terms")
        if self.supplier_policy == "default" and self.default_supplier is None:
            raise PydanticCustomError("policy", "supplier_policy 'default' needs default_supplier")
        return self


class SetupFields(SetupRules):
    """The setup as the database's columns (and the UI's form) hold it: journals side by side."""

    invoice_journal: Number
    payment_journal: Number


class RogerSide(_Strict):
    company_id: Key
    token: TokenRef


class EconomicSide(_Strict):
    agreement_number: Number | None = None
    grant_token: TokenRef


class Journals(_Strict):
    supplier_invoices: Number
    supplier_payments: Number


class CategorySpec(_Strict):
    account: Number
    vat_code: Annotated[str, Field(min_length=1, max_length=8)] | None = None


def _account_shorthand(value: Any) -> Any:
    """``cat_x: 2750`` is short for ``cat_x: {account: 2750}``."""
    return {"account": value} if isinstance(value, int) and not isinstance(value, bool) else value


class AgreementSpec(SetupRules):
    """One agreement as the file writes it (after its ``defaults`` are merged in)."""

    id: Key
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    active: bool = True
    roger: RogerSide
    economic: EconomicSide
    journals: Journals
    categories: dict[Key, CategorySpec] = {}
    payment_methods: dict[Key, Number] = {}

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("categories"), Mapping):
            data = {**data, "categories": {k: _account_shorthand(v) for k, v in data["categories"].items()}}
        return data


class FileSpec(_Strict):
    defaults: dict[str, Any] | None = None
    agreements: list[dict[str, Any]]


# ------------------------------------------------------------------------------------------------ errors


def _input_text(error: Mapping[str, Any]) -> str:
    value = error.get("input")
    secretive = {*TOKEN_FIELDS, "roger", "economic"}  # `roger: <a token>` is as secret as `token: <a token>`
    if secretive & set(error.get("loc", ())) or isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


def describe(exc: ValidationError, labels: Mapping[str, str] | None = None) -> list[str]:
    """One line per problem: where (``economic.agreement_number``), what; a token's input is never shown."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error["loc"]]
        where = ".".join(loc)
        if labels and loc and loc[0] in labels:
            where = labels[loc[0]]
        message = error["msg"]
        if error["type"] == "policy" and labels:
            for name, label in labels.items():
                message = message.replace(name, label)
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] not in ("unknown_key", "policy", "token_ref"):
            message += _input_text(error)
        lines.append(f"{where}: {message}" if where else message)
    return lines


def check_setup(values: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> list[str]:
    """The setup rules on values already read from a form (numbers as int, booleans as bool); [] when valid."""
    try:
        SetupFields.model_validate(dict(values))
    except ValidationError as exc:
        return describe(exc, labels)
    return []


# ------------------------------------------------------------------------------------------------ the YAML reader


_YAML_11_SURPRISES = frozenset(f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "merge", "timestamp"))


class StrictLoader(yaml.SafeLoader):
    """YAML without its surprises: a duplicate key, an anchor or an alias is an error; only ``true``/``false``
    are booleans (``no`` stays text) and only plain decimals are integers (``0777`` and ``1:30`` stay text)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_11_SURPRISES]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&, *) are not allowed in an agreements file", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key '{key}' (first at line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*))$"), list("-+0123456789")
)


def load_yaml(data: bytes, name: str) -> Any:
    """The document in ``data``; a non-UTF-8 byte is named with its position, a YAML error with its line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{name}: not UTF-8 text: byte 0x{data[exc.start]:02x} at position {exc.start} (line {line})"
        ) from None
    loader = StrictLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read agreements file {name}: {exc}") from None
    finally:
        loader.dispose()


# ------------------------------------------------------------------------------------------------ parsing


def parse_agreement(raw: dict[str, Any], defaults: dict[str, Any]) -> AgreementConfig:
    """One agreement of the file, its ``defaults`` merged in, checked by :class:`AgreementSpec`."""
    where = f"agreement {raw.get('id')}" if isinstance(raw, Mapping) and raw.get("id") else "agreement"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        spec = AgreementSpec.model_validate({**defaults, **raw})
    except ValidationError as exc:
        lines = [
            f"{where}: {line}" + (" (from defaults)" if error["loc"] and error["loc"][0] not in raw else "")
            for error, line in zip(exc.errors(include_url=False), describe(exc), strict=True)
        ]
        raise ConfigError("; ".join(lines)) from None
    return AgreementConfig(
        id=spec.id,
        name=spec.name or spec.id,
        active=spec.active,
        roger_company_id=spec.roger.company_id,
        roger_token_ref=spec.roger.token,
        economic_agreement_number=spec.economic.agreement_number,
        economic_token_ref=spec.economic.grant_token,
        invoice_journal=spec.journals.supplier_invoices,
        payment_journal=spec.journals.supplier_payments,
        default_account=spec.default_account,
        supplier_policy=spec.supplier_policy,
        supplier_group=spec.supplier_group,
        payment_terms=spec.payment_terms,
        default_supplier=spec.default_supplier,
        closed_period_policy=spec.closed_period_policy,
        book_without_attachment=spec.book_without_attachment,
        categories={k: (c.account, c.vat_code) for k, c in spec.categories.items()},
        payment_methods=dict(spec.payment_methods),
    )


def _check_defaults(defaults: dict[str, Any], name: str) -> None:
    known = [k for k in AgreementSpec.model_fields if k not in ("id", "name")]
    unknown = [k for k in defaults if k not in known]
    if unknown:
        raise ConfigError(f"{name}: defaults: " + "; ".join(unknown_key_message(k, known) for k in unknown))


def read_file(path: str | Path) -> list[AgreementConfig]:
    """The file's agreements, every rule checked (none stored): an empty file or an unknown key is an error."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read agreements file {path}: {exc.strerror}") from None
    doc = load_yaml(data, str(path))
    if doc is None:
        raise ConfigError(f"{path}: the file is empty: it must list 'agreements'")
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: expected 'defaults' and 'agreements', got {type(doc).__name__}")
    try:
        spec = FileSpec.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{path}: {line}" for line in describe(exc))) from None
    if not spec.agreements:
        raise ConfigError(f"{path}: 'agreements' lists no agreement")
    defaults = spec.defaults or {}
    _check_defaults(defaults, str(path))
    try:
        configs = [parse_agreement(item, defaults) for item in spec.agreements]
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    problems = conflicts({c.id: c for c in configs}, {}, ids_in_order=[c.id for c in configs])
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return configs


def conflicts(
    incoming: dict[str, AgreementConfig], stored: dict[str, Any], ids_in_order: list[str] | None = None
) -> list[str]:
    """Two agreements on one Roger company or one e-conomic agreement would book every bill twice.

    ``incoming`` is what will be stored, ``stored`` the database's other agreements (rows); both are checked
    together, inactive agreements included (activating one again must not book twice either).
    """
    problems: list[str] = []
    if ids_in_order is not None:
        dupes = sorted({i for i in ids_in_order if ids_in_order.count(i) > 1})
        problems += [f"agreement id {i} appears twice" for i in dupes]
    owners: dict[tuple[str, Any], str] = {}
    everyone = [(i, r, True) for i, r in stored.items() if i not in incoming] + [
        (i, c, False) for i, c in incoming.items()
    ]
    for aid, item, in_db in everyone:
        for kind, value in (
            ("Roger company", item.roger_company_id),
            ("e-conomic agreement", item.economic_agreement_number),
        ):
            if value is None:
                continue
            other = owners.get((kind, value))
            if other is None:
                owners[(kind, value)] = f"{aid} (in the database)" if in_db else aid
            else:
                problems.append(
                    f"agreement {aid}: {kind} {value} is already agreement {other}'s: both would book every bill"
                )
    return problems


# ------------------------------------------------------------------------------------------------ the database


def stored_config(sess: Session, agreement_id: str) -> AgreementConfig | None:
    """An agreement as the database holds it, in the file's terms."""
    row = sess.get(models.Agreement, agreement_id)
    if row is None:
        return None
    cats = sess.scalars(select(models.CategoryMapping).where(models.CategoryMapping.agreement_id == agreement_id))
    methods = sess.scalars(
        select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id == agreement_id)
    )
    return AgreementConfig(
        id=row.id,
        **{name: getattr(row, name) for name in AGREEMENT_COLUMNS},
        categories={m.category_id: (m.account_number, m.vat_code) for m in cats},
        payment_methods={m.method_id: m.account_number for m in methods},
    )


def difference(old: AgreementConfig, new: AgreementConfig) -> list[str]:
    """What ``new`` changes in ``old``: ``field: old → new``, mappings added, removed or changed."""
    lines = [
        f"{name}: {getattr(old, name)!r} → {getattr(new, name)!r}"
        for name in AGREEMENT_COLUMNS
        if getattr(old, name) != getattr(new, name)
    ]
    for label, before, after in (
        ("category", old.categories, new.categories),
        ("payment method", old.payment_methods, new.payment_methods),
    ):
        for key in sorted(set(before) | set(after)):
            if key not in before:
                lines.append(f"{label} {key}: added {_mapping_text(after[key])}")
            elif key not in after:
                lines.append(f"{label} {key}: removed (was {_mapping_text(before[key])})")
            elif before[key] != after[key]:
                lines.append(f"{label} {key}: {_mapping_text(before[key])} → {_mapping_text(after[key])}")
    return lines


def _mapping_text(value: Any) -> str:
    if isinstance(value, tuple):
        account, vat = value
        return f"account {account}" + (f", VAT {vat}" if vat else "")
    return f"account {value}"


def store(sess: Session, configs: list[AgreementConfig], actor: str | None = None) -> None:
    """Write agreements and replace their mapping tables, unconditionally (:func:`load` decides what to write).

    With ``actor``, each agreement's change is audited (:func:`record`: ``config_add`` or ``config_replace``,
    before → after); without, the caller records it in its own words (the UI's add-a-client and CSV import).
    """
    now = datetime.now(UTC)
    for cfg in configs:
        if actor is not None:
            old = stored_config(sess, cfg.id)
            before, after = changed(audit_pairs(old), audit_pairs(cfg)) if old else ({}, audit_pairs(cfg))
            record(sess, cfg.id, actor, "config_replace" if old else "config_add", before=before, after=after, at=now)
        row = sess.get(models.Agreement, cfg.id) or models.Agreement(id=cfg.id)
        for name in AGREEMENT_COLUMNS:
            setattr(row, name, getattr(cfg, name))
        row.updated_at = now
        sess.add(row)
        sess.flush()
        save_mappings(sess, cfg.id, cfg.categories, cfg.payment_methods)


def save_mappings(
    sess: Session, agreement_id: str, categories: dict[str, tuple[int, str | None]], methods: dict[str, int]
) -> None:
    sess.execute(delete(models.CategoryMapping).where(models.CategoryMapping.agreement_id == agreement_id))
    sess.execute(delete(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id == agreement_id))
    for cat_id, (account, vat) in categories.items():
        sess.add(
            models.CategoryMapping(agreement_id=agreement_id, category_id=cat_id, account_number=account, vat_code=vat)
        )
    for method_id, account in methods.items():
        sess.add(models.PaymentMethodMapping(agreement_id=agreement_id, method_id=method_id, account_number=account))


# ------------------------------------------------------------------------------------------------ the audit

SETUP_CHANGES = ("save_setup", "config_replace", "config_deactivate")  # audit actions that change a setup


def cli_actor() -> str:
    """Who a change from the command line is recorded as: ``cli:<OS user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        name = os.environ.get("USER") or f"uid {os.getuid()}"
    return f"cli:{name}"


def mapping_pairs(categories: Mapping[str, tuple[int, str | None]], methods: Mapping[str, int]) -> dict[str, str]:
    """Mappings as the audit compares them: ``category X`` → ``account[ / VAT]``, ``payment method Y`` → account."""
    out = {f"category {cid}": f"{account}" + (f" / {vat}" if vat else "") for cid, (account, vat) in categories.items()}
    out |= {f"payment method {mid}": str(account) for mid, account in methods.items()}
    return out


def audit_pairs(cfg: AgreementConfig) -> dict[str, Any]:
    """An agreement as flat "what → value" pairs (token references name where a token lives, never a token)."""
    return {name: getattr(cfg, name) for name in AGREEMENT_COLUMNS} | mapping_pairs(cfg.categories, cfg.payment_methods)


def changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only what differs: (old values, new values); a key missing on one side is ``None`` there."""
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def record(
    sess: Session,
    agreement_id: str,
    actor: str,
    action: str,
    *,
    target: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str | None = None,
    at: datetime | None = None,
) -> None:
    """One ``setup_audit`` row, in the caller's unit of work (so it is stored exactly when the change is)."""
    sess.add(
        models.SetupAudit(
            agreement_id=agreement_id,
            at=at or datetime.now(UTC),
            actor=actor or "unknown",
            action=action,
            target=target,
            before=before or {},
            after=after or {},
            note=note,
        )
    )


def record_imported(sess: Session, results: Iterable[Any], filename: str, actor: str) -> None:
    """Audit the agreements a CSV import created (``import_csv``: the file and line each came from)."""
    for r in results:
        if r.outcome == "created" and r.agreement_id:
            where = f"{filename} line {r.line}"
            record(sess, r.agreement_id, actor, "import_csv", target=where, note=f"created from {where}")


@dataclass
class LoadReport:
    """What a load did and did not do, agreement by agreement."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: dict[str, list[str]] = field(default_factory=dict)
    differs: dict[str, list[str]] = field(default_factory=dict)  # not changed: --replace was not given
    missing: dict[str, str] = field(
        default_factory=dict
    )  # in the database, not in the file: active/inactive/deactivated
    token_problems: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return self.added + self.unchanged + list(self.replaced) + list(self.differs)

    def lines(self) -> list[str]:
        out = [f"{aid}: added" for aid in self.added]
        out += [f"{aid}: unchanged" for aid in self.unchanged]
        for aid, diff in self.replaced.items():
            out += [f"{aid}: replaced"] + [f"    {line}" for line in diff]
        for aid, diff in self.differs.items():
            out += [f"{aid}: differs, not changed (use --replace)"] + [f"    {line}" for line in diff]
        for aid, state in self.missing.items():
            done = {"active": "left active (use --deactivate-missing)", "inactive": "inactive"}.get(state, state)
            out.append(f"{aid}: in the database, not in the file: {done}")
        out += [f"warning: {p}" for p in self.token_problems]
        return out


def token_problems(configs: list[AgreementConfig], conn_lookup: credentials.ConnLookup | None) -> list[str]:
    """Token references that do not resolve here, named by reference (never a value).

    Airflow connections are checked only when a look-up is given (the DAG layer has one); without it they are
    named as not checked."""
    problems = []
    for cfg in configs:
        for label, ref in (("roger.token", cfg.roger_token_ref), ("economic.grant_token", cfg.economic_token_ref)):
            if ref.startswith("conn:") and conn_lookup is None:  # this package never imports Airflow
                problems.append(f"agreement {cfg.id}: {label}: {ref} is an Airflow connection, not checked here")
                continue
            try:
                credentials.resolve(ref, conn_lookup)
            except ConfigError as exc:
                problems.append(f"agreement {cfg.id}: {label}: {exc}")
    return problems


def load(
    sess: Session,
    configs: list[AgreementConfig],
    replace: bool = False,
    deactivate_missing: bool = False,
    conn_lookup: credentials.ConnLookup | None = None,
    actor: str | None = None,
) -> LoadReport:
    """Add the file's new agreements; change existing ones only when ``replace``; nothing written on a conflict.

    Every change is audited as ``actor`` (default :func:`cli_actor`)."""
    actor = actor or cli_actor()
    report = LoadReport(token_problems=token_problems(configs, conn_lookup))
    rows = {r.id: r for r in sess.scalars(select(models.Agreement))}
    to_store: list[AgreementConfig] = []
    for cfg in configs:
        old = stored_config(sess, cfg.id) if cfg.id in rows else None
        if old is None:
            report.added.append(cfg.id)
            to_store.append(cfg)
            continue
        diff = difference(old, cfg)
        if not diff:
            report.unchanged.append(cfg.id)
        elif replace:
            report.replaced[cfg.id] = diff
            to_store.append(cfg)
        else:
            report.differs[cfg.id] = diff
    in_file = {c.id for c in configs}
    report.missing = {aid: "active" if rows[aid].active else "inactive" for aid in sorted(set(rows) - in_file)}
    problems = conflicts({c.id: c for c in to_store}, rows)
    if problems:
        raise ConfigError("; ".join(problems))
    store(sess, to_store, actor)
    if deactivate_missing:
        for aid, state in report.missing.items():
            if state == "active":
                now = datetime.now(UTC)
                rows[aid].active = False
                rows[aid].updated_at = now
                report.missing[aid] = "deactivated"
                record(sess, aid, actor, "config_deactivate", before={"active": True}, after={"active": False}, at=now)
    return report


def load_file(
    path: str | Path,
    url: str | None = None,
    replace: bool = False,
    deactivate_missing: bool = False,
    conn_lookup: credentials.ConnLookup | None = None,
) -> list[str]:
    """Load a file (see :func:`load`); the ids of the file's agreements."""
    return load_path(path, url, replace, deactivate_missing, conn_lookup).ids


def load_path(
    path: str | Path,
    url: str | None = None,
    replace: bool = False,
    deactivate_missing: bool = False,
    conn_lookup: credentials.ConnLookup | None = None,
    actor: str | None = None,
) -> LoadReport:
    from roger_economic.db import session

    configs = read_file(path)
    with session(url) as sess:
        return load(sess, configs, replace, deactivate_missing, conn_lookup, actor)


# ------------------------------------------------------------------------------------------------ export


def export_document(sess: Session) -> dict[str, Any]:
    """Today's setup, every agreement written out in full (no defaults), in id order."""
    items = []
    for aid in sess.scalars(select(models.Agreement.id).order_by(models.Agreement.id)):
        cfg = stored_config(sess, aid)
        assert cfg is not None
        item: dict[str, Any] = {
            "id": cfg.id,
            "name": cfg.name,
            "active": cfg.active,
            "roger": {"company_id": cfg.roger_company_id, "token": cfg.roger_token_ref},
            "economic": {"agreement_number": cfg.economic_agreement_number, "grant_token": cfg.economic_token_ref},
            "journals": {"supplier_invoices": cfg.invoice_journal, "supplier_payments": cfg.payment_journal},
        }
        if cfg.economic_agreement_number is None:
            del item["economic"]["agreement_number"]
        for name in (
            "default_account",
            "supplier_policy",
            "supplier_group",
            "payment_terms",
            "default_supplier",
            "closed_period_policy",
            "book_without_attachment",
        ):
            if getattr(cfg, name) is not None:
                item[name] = getattr(cfg, name)
        item["categories"] = {
            cid: ({"account": account, "vat_code": vat} if vat else {"account": account})
            for cid, (account, vat) in sorted(cfg.categories.items())
        }
        item["payment_methods"] = dict(sorted(cfg.payment_methods.items()))
        items.append(item)
    return {"agreements": items}


def export_text(doc: dict[str, Any]) -> str:
    """The document as YAML the reader accepts: no anchors (every mapping is its own), keys in a fixed order."""
    header = "# Agreements exported from the project database (python -m roger_economic.config export).\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)


def export_file(path: str | Path, url: str | None = None) -> int:
    """Write today's setup to ``path``; the number of agreements written."""
    from roger_economic.db import session

    with session(url) as sess:
        doc = export_document(sess)
    Path(path).write_text(export_text(doc), encoding="utf-8")
    return len(doc["agreements"])


# ------------------------------------------------------------------------------------------------ agreements to run


def active_agreement_ids(sess: Session, only: list[str] | None = None) -> list[str]:
    query = select(models.Agreement.id).where(models.Agreement.active.is_(True)).order_by(models.Agreement.id)
    ids = list(sess.scalars(query))
    if only:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise ConfigError(f"unknown or inactive agreements: {', '.join(unknown)}")
        ids = [i for i in ids if i in set(only)]
    return ids


# ------------------------------------------------------------------------------------------------ command line


def _parser(prog: str = "python -m roger_economic.config") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    load_cmd = sub.add_parser("load", help="add the file's new agreements to the database")
    load_cmd.add_argument("file")
    load_cmd.add_argument("--replace", action="store_true", help="change existing agreements to the file's setup")
    load_cmd.add_argument(
        "--deactivate-missing",
        action="store_true",
        help="deactivate agreements in the database that the file does not list",
    )
    export_cmd = sub.add_parser("export", help="write the database's agreements and mappings to a file")
    export_cmd.add_argument("file")
    csv_cmd = sub.add_parser("import-csv", help="add agreements from a CSV file (one company or several), per row")
    csv_cmd.add_argument("file")
    csv_cmd.add_argument("--invoice-journal", type=int, help="for rows without an invoice_journal column value")
    csv_cmd.add_argument("--payment-journal", type=int, help="for rows without a payment_journal column value")
    csv_cmd.add_argument("--dry-run", action="store_true", help="check every row, store nothing")
    return parser


def _import_csv(args: argparse.Namespace, conn_lookup: credentials.ConnLookup | None) -> int:
    """Exit 0 when every row was created, 1 when some row was refused (the others are created), 2 when the file
    was refused as a whole (nothing stored)."""
    from roger_economic import csv_import

    journals = {
        key: value
        for key, value in (("supplier_invoices", args.invoice_journal), ("supplier_payments", args.payment_journal))
        if value is not None
    }
    from roger_economic.db import session

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    rows = csv_import.read_rows(data, args.file)
    with session() as sess:
        results = csv_import.import_rows(sess, rows, {"journals": journals} if journals else {}, conn_lookup,
                                         args.dry_run)  # fmt: skip
        record_imported(sess, results, Path(args.file).name, cli_actor())
    for result in results:
        print(result.text())
    done = sum(r.outcome != "refused" for r in results)
    verb = "would be created" if args.dry_run else "created"
    print(f"{args.file}: {len(results)} rows, {done} {verb}, {len(results) - done} refused")
    return 1 if done < len(results) else 0


def main(
    argv: list[str], conn_lookup: credentials.ConnLookup | None = None, prog: str = "python -m roger_economic.config"
) -> int:
    """Exit 0 when the database now matches the file; 1 when an agreement differs and was left unchanged
    (without ``--replace``); 2 when the file or the load was refused (nothing stored). A caller with Airflow at
    hand passes ``conn_lookup`` so that ``conn:`` token references are checked too."""
    args = _parser(prog).parse_args(argv)
    try:
        if args.command == "import-csv":
            return _import_csv(args, conn_lookup)
        if args.command == "export":
            count = export_file(args.file)
            print(f"exported {count} agreements to {args.file}")
            return 0
        report = load_path(args.file, None, args.replace, args.deactivate_missing, conn_lookup)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    print(
        f"{args.file}: {len(report.added)} added, {len(report.replaced)} replaced, {len(report.unchanged)} "
        f"unchanged, {len(report.differs)} differ (not changed), {len(report.missing)} not in the file"
    )
    return 1 if report.differs else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
