"""``python -m roger_economic.db migrate``: create or upgrade the project's tables."""

from __future__ import annotations

import sys

from roger_economic.db import default_url, migrate


def main(argv: list[str]) -> int:
    if argv[:1] != ["migrate"]:
        print("usage: python -m roger_economic.db migrate", file=sys.stderr)
        return 2
    migrate()
    url = default_url()
    print(f"migrated {url.split('@')[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
