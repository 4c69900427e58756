"""Agreements and their mapping tables, from a YAML file into the database.

The file is the one place a firm describes its client agreements (see
``config/agreements.example.yaml``, documented in the README). Tokens are never
written in it: ``token: env:VAR`` or ``token: conn:AIRFLOW_CONN_ID`` name where
the secret lives. Loading is idempotent: a second load of the same file changes
nothing, and a mapping removed from the file is removed from the database.

``python -m roger_economic.config load FILE``
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from roger_economic.db import models
from roger_economic.errors import ConfigError

SUPPLIER_POLICIES = ("create", "default", "quarantine")
CLOSED_PERIOD_POLICIES = ("quarantine", "next_open_date")
TOKEN_REF_PREFIXES = ("env:", "conn:")


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


def _need(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise ConfigError(f"{where}: '{key}' is required")
    return data[key]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


def _token_ref(value: Any, where: str) -> str:
    text = str(value)
    if not text.startswith(TOKEN_REF_PREFIXES):
        raise ConfigError(f"{where}: must be 'env:VARIABLE' or 'conn:CONNECTION_ID', never the token itself")
    return text


def parse_agreement(raw: dict[str, Any], defaults: dict[str, Any]) -> AgreementConfig:
    data = {**defaults, **raw}
    aid = str(_need(data, "id", "agreement"))
    where = f"agreement {aid}"
    roger = _need(data, "roger", where)
    economic = _need(data, "economic", where)
    journals = _need(data, "journals", where)
    policy = data.get("supplier_policy", "quarantine")
    if policy not in SUPPLIER_POLICIES:
        raise ConfigError(f"{where}: supplier_policy must be one of {SUPPLIER_POLICIES}, got {policy!r}")
    closed = data.get("closed_period_policy", "quarantine")
    if closed not in CLOSED_PERIOD_POLICIES:
        raise ConfigError(f"{where}: closed_period_policy must be one of {CLOSED_PERIOD_POLICIES}, got {closed!r}")
    if policy == "create" and (data.get("supplier_group") is None or data.get("payment_terms") is None):
        raise ConfigError(f"{where}: supplier_policy 'create' needs supplier_group and payment_terms")
    if policy == "default" and data.get("default_supplier") is None:
        raise ConfigError(f"{where}: supplier_policy 'default' needs default_supplier")
    categories: dict[str, tuple[int, str | None]] = {}
    for cat_id, spec in (data.get("categories") or {}).items():
        if isinstance(spec, dict):
            account = _int(_need(spec, "account", f"{where} category {cat_id}"), f"{where} category {cat_id}")
            categories[str(cat_id)] = (account, spec.get("vat_code"))
        else:
            categories[str(cat_id)] = (_int(spec, f"{where} category {cat_id}"), None)
    methods = {
        str(m): _int(acc, f"{where} payment method {m}") for m, acc in (data.get("payment_methods") or {}).items()
    }
    optional_int = {
        k: (_int(data[k], f"{where} {k}") if data.get(k) is not None else None)
        for k in ("default_account", "supplier_group", "payment_terms", "default_supplier")
    }
    return AgreementConfig(
        id=aid,
        name=str(data.get("name") or aid),
        roger_company_id=str(_need(roger, "company_id", f"{where} roger")),
        roger_token_ref=_token_ref(_need(roger, "token", f"{where} roger"), f"{where} roger.token"),
        economic_agreement_number=(
            _int(economic["agreement_number"], f"{where} economic.agreement_number")
            if economic.get("agreement_number") is not None
            else None
        ),
        economic_token_ref=_token_ref(
            _need(economic, "grant_token", f"{where} economic"), f"{where} economic.grant_token"
        ),
        invoice_journal=_int(_need(journals, "supplier_invoices", f"{where} journals"), f"{where} journals"),
        payment_journal=_int(_need(journals, "supplier_payments", f"{where} journals"), f"{where} journals"),
        supplier_policy=policy,
        closed_period_policy=closed,
        book_without_attachment=bool(data.get("book_without_attachment", False)),
        active=bool(data.get("active", True)),
        categories=categories,
        payment_methods=methods,
        **optional_int,
    )


def read_file(path: str | Path) -> list[AgreementConfig]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read agreements file {path}: {exc}") from None
    defaults = doc.get("defaults") or {}
    items = doc.get("agreements") or []
    if not isinstance(items, list):
        raise ConfigError(f"{path}: 'agreements' must be a list")
    configs = [parse_agreement(item, defaults) for item in items]
    seen: set[str] = set()
    for cfg in configs:
        if cfg.id in seen:
            raise ConfigError(f"{path}: agreement id {cfg.id} appears twice")
        seen.add(cfg.id)
    return configs


def store(sess: Session, configs: list[AgreementConfig]) -> None:
    """Upsert agreements and replace their mapping tables."""
    now = datetime.now(UTC)
    for cfg in configs:
        row = sess.get(models.Agreement, cfg.id) or models.Agreement(id=cfg.id)
        for name in (
            "name", "active", "roger_company_id", "roger_token_ref", "economic_agreement_number",
            "economic_token_ref", "invoice_journal", "payment_journal", "default_account", "supplier_policy",
            "supplier_group", "payment_terms", "default_supplier", "closed_period_policy",
            "book_without_attachment",
        ):
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
        sess.add(models.CategoryMapping(agreement_id=agreement_id, category_id=cat_id, account_number=account,
                                        vat_code=vat))
    for method_id, account in methods.items():
        sess.add(models.PaymentMethodMapping(agreement_id=agreement_id, method_id=method_id, account_number=account))


def load_file(path: str | Path, url: str | None = None) -> list[str]:
    from roger_economic.db import session

    configs = read_file(path)
    with session(url) as sess:
        store(sess, configs)
    return [c.id for c in configs]


def active_agreement_ids(sess: Session, only: list[str] | None = None) -> list[str]:
    query = select(models.Agreement.id).where(models.Agreement.active.is_(True)).order_by(models.Agreement.id)
    ids = list(sess.scalars(query))
    if only:
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise ConfigError(f"unknown or inactive agreements: {', '.join(unknown)}")
        ids = [i for i in ids if i in set(only)]
    return ids


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "load":
        print("usage: python -m roger_economic.config load FILE", file=sys.stderr)
        return 2
    ids = load_file(argv[1])
    print(f"loaded {len(ids)} agreements from {argv[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
