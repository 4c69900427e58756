"""How good are the suggested mappings? Leave-one-out on the sandbox's world and the demo agreements.

    .venv/bin/python tools/suggestions.py [config/agreements.example.yaml]

Every agreement of the file gets the world's master data (``sandboxes/world.py``: the chart of accounts
e-conomic's sandbox serves, the categories and payment methods Roger's sandbox serves). Then each mapped
category (and payment method) is hidden in turn and suggested again from the OTHER agreements' mappings and the
chart of accounts (:func:`roger_economic.suggest.suggest`); a hit is a FIRST suggestion equal to the account the
accountant mapped. Printed twice: with the firm's other agreements (a firm adding a client) and from the names
and kinds alone (a firm's first client: nothing to learn from). A mapping to an account that cannot be booked
(agr_0003 maps a barred account on purpose) can never be suggested: it counts as a miss and is listed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]  # the package, and the sandboxes and devkit beside it

from roger_economic import config, model, suggest  # noqa: E402
from sandboxes import world  # noqa: E402


def world_snapshots() -> dict[str, Any]:
    """The master data an agreement of the sandbox's world has (the parts the suggestions read)."""
    accounts = []
    for a in world.CHART_OF_ACCOUNTS:
        acc: dict[str, Any] = {"accountNumber": a.number, "name": a.name, "accountType": a.account_type}
        if a.barred:
            acc["barred"] = True
        if a.block_direct_entries:
            acc["blockDirectEntries"] = True
        accounts.append(acc)
    return {
        "accounts": accounts,
        "roger_categories": [{"id": c, "name": n, "archived": archived} for c, n, archived in world.CATEGORIES],
        "roger_payment_methods": [
            {"id": m, "name": n, "kind": kind, "archived": archived} for m, n, kind, _masked, archived in
            world.PAYMENT_METHODS
        ],
    }  # fmt: skip


@dataclass
class Score:
    hits: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def line(self, label: str) -> str:
        return f"{label}: {self.hits}/{self.total} = {self.share:.0%}"


def measure(agreements: list[model.Agreement], snapshots: dict[str, Any], with_peers: bool = True) -> dict[str, Score]:
    """{"categories": Score, "payment_methods": Score}: first suggestions that equal the mapping, leave-one-out."""
    scores = {"categories": Score(), "payment_methods": Score()}
    for cfg in agreements:
        others = [
            suggest.Peer(
                o.categories, o.payment_methods, snapshots["roger_categories"], snapshots["roger_payment_methods"]
            )
            for o in agreements
            if o.id != cfg.id
        ]
        found = suggest.suggest(snapshots, others if with_peers else [])
        for kind, mapped, suggested in (
            ("categories", {c: a for c, (a, _v) in cfg.categories.items()}, found.categories),
            ("payment_methods", cfg.payment_methods, found.methods),
        ):
            for item, account in sorted(mapped.items()):
                score = scores[kind]
                score.total += 1
                first = (suggested.get(item) or [None])[0]
                if first is not None and first.account == account:
                    score.hits += 1
                else:
                    got = f"{first.account} ({first.reason})" if first else "nothing"
                    score.misses.append(f"{cfg.id} {item}: mapped {account}, first suggestion {got}")
    return scores


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", default=str(ROOT / "config" / "agreements.example.yaml"))
    args = parser.parse_args(argv)
    agreements = config.read_file(args.file)
    snapshots = world_snapshots()
    print(f"{len(agreements)} agreements of {args.file}, the sandbox world's master data; leave-one-out")
    for label, with_peers in (("with the firm's other agreements", True), ("from names and kinds alone", False)):
        scores = measure(agreements, snapshots, with_peers)
        print(f"{label}: " + "; ".join(score.line(kind) for kind, score in scores.items()))
        for score in scores.values():
            for miss in score.misses:
                print(f"    miss: {miss}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
