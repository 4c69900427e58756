"""``roger-economic``: the project's one command (the ``[project.scripts]`` entry in pyproject.toml).

    roger-economic migrate                        create or upgrade the project database's tables
    roger-economic config load|export|import-csv  agreements from and to files (:mod:`roger_economic.config`)
    roger-economic check [--agreement ID ...]     every active agreement's connections and prerequisites

``check`` calls Roger's company endpoint and e-conomic's ``/self`` with each agreement's own tokens and prints a
table: Roger, e-conomic, API access, Indscanning. It exits 1 when any agreement fails one of them (a missing
Indscanning fails only an agreement that has not chosen ``book_without_attachment``: it would wait for it), so a
deployment can run it as a gate. It reads and never writes: the UI's "check again" is what records prerequisites.
This module lives in the Airflow glue because the tokens may be Airflow connections (``conn:`` references).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

CHECK_HELP = "check every active agreement's connections (Roger, e-conomic /self) and prerequisites"


@dataclass(frozen=True)
class Check:
    """One agreement's answers: each column is ``(passed, text)``."""

    agreement: str
    roger: tuple[bool, str]
    economic: tuple[bool, str]
    api_access: tuple[bool, str]
    scanning: tuple[bool, str]

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in (self.roger, self.economic, self.api_access, self.scanning))


COLUMNS = ("agreement", "Roger", "e-conomic", "API access", "Indscanning")


def _failure(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] or type(exc).__name__


def check_agreement(agreement_id: str) -> Check:
    """Call both services with the agreement's own tokens (two tries, a few seconds at most per call)."""
    from roger_economic.db import models, session
    from roger_economic.economic.client import EconomicClient
    from roger_economic.http import Calls, RetryPolicy
    from roger_economic.masterdata import has_scanning
    from roger_economic.roger.client import RogerClient
    from roger_economic_airflow import runtime

    calls = Calls(agreement_id, RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0, budget=5.0, timeout=15.0))
    ends = runtime.endpoints()  # base URLs from the environment or connections; conn: tokens looked up there
    with session() as sess:
        row = sess.get_one(models.Agreement, agreement_id)
        roger_ref, company_id, economic_ref = row.roger_token_ref, row.roger_company_id, row.economic_token_ref
        agreement_number = row.economic_agreement_number
        without_attachment = bool(row.book_without_attachment)

    roger_answer: tuple[bool, str]
    try:
        roger = RogerClient(ends.roger_base_url, company_id, ends.token(roger_ref), calls)
        try:
            company = roger.company()
        finally:
            roger.close()
        roger_answer = (True, f"✓ {company.get('name') or company_id}")
    except Exception as exc:
        roger_answer = (False, f"✗ {_failure(exc)}")

    not_read = (False, "✗ /self not read")
    try:
        economic = EconomicClient(ends.economic_base_url, ends.app_secret, ends.token(economic_ref), calls)
        try:
            me = economic.self_()
        finally:
            economic.close()
    except Exception as exc:
        return Check(agreement_id, roger_answer, (False, f"✗ {_failure(exc)}"), not_read, not_read)
    company_name = (me.get("company") or {}).get("name") or "?"
    if agreement_number is not None and me.get("agreementNumber") != agreement_number:
        wrong = (False, f"✗ the grant token opens agreement {me.get('agreementNumber')}, not {agreement_number}")
        return Check(agreement_id, roger_answer, wrong, (True, "✓"), not_read)
    if has_scanning({"self": me}):
        scanning = (True, "✓")
    elif without_attachment:
        scanning = (True, "✗ (books without attachment, as chosen)")
    else:
        scanning = (False, "✗ bills wait: enable Indscanning or choose book_without_attachment")
    return Check(agreement_id, roger_answer, (True, f"✓ {company_name}"), (True, "✓"), scanning)


def table(checks: Sequence[Check]) -> str:
    rows = [COLUMNS, *((c.agreement, c.roger[1], c.economic[1], c.api_access[1], c.scanning[1]) for c in checks)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def check(only: Sequence[str] | None = None) -> int:
    from roger_economic.config import active_agreement_ids
    from roger_economic.db import session
    from roger_economic.errors import ConfigError

    try:
        with session() as sess:
            ids = active_agreement_ids(sess, list(only) if only else None)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not ids:
        print("no active agreements")
        return 0
    checks = [check_agreement(aid) for aid in ids]
    print(table(checks))
    failed = [c.agreement for c in checks if not c.ok]
    print(f"{len(checks)} agreements checked, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def migrate() -> int:
    from roger_economic.db import default_url
    from roger_economic.db import migrate as run_migrations

    run_migrations()
    print(f"migrated {default_url().split('@')[-1]}")
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="roger-economic", description=__doc__.split("\n")[0])
    sub = main_parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the project database's tables")
    sub.add_parser("config", help="load, export or import agreements (roger-economic config --help)", add_help=False)
    check_cmd = sub.add_parser("check", help=CHECK_HELP)
    check_cmd.add_argument("--agreement", action="append", metavar="ID", help="only this agreement (repeatable)")
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["config"]:  # its own parser: the same subcommands as python -m roger_economic.config
        from roger_economic import config

        return config.main(args[1:], prog="roger-economic config")
    parsed = parser().parse_args(args)
    if parsed.command == "migrate":
        return migrate()
    return check(parsed.agreement)


if __name__ == "__main__":
    raise SystemExit(main())
