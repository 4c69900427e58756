"""``python -m sandboxes.roger``: serve the Roger sandbox until stopped.

Flags: ``--host`` (127.0.0.1), ``--port`` (8081), ``--companies`` (3), ``--bills`` per company (40),
``--seed`` (7), ``--token-prefix`` (``sbx-``), ``--end`` (2026-11-26T00:00:00Z, exclusive end of the
``updated_at`` spread), ``--days`` (7, its length), ``--problem-rate`` (0.05), ``--paid-rate`` (0.4),
``--night`` (a skewed night: bills per company drawn from ``LOW-HIGH:SHARE`` ranges, e.g.
``0-3:70,4-30:25,100-400:5``, instead of ``--bills`` each), ``--latency`` (``roger``, JSON or off).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from sandboxes.httpbase import Latency, SandboxServer
from sandboxes.roger.server import RogerHandler, RogerState


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandboxes.roger", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--companies", type=int, default=3)
    parser.add_argument("--bills", type=int, default=40, help="bills per company")
    parser.add_argument("--seed", default="7")
    parser.add_argument("--token-prefix", default="sbx-")
    parser.add_argument("--end", default="2026-11-26T00:00:00Z", help="updated_at lies in [end - days, end)")
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--problem-rate", type=float, default=0.05)
    parser.add_argument("--paid-rate", type=float, default=0.4)
    parser.add_argument(
        "--history-bills",
        type=int,
        default=0,
        help="more bills per company, updated in the --history-days before the window",
    )
    parser.add_argument("--history-days", type=float, default=7)
    parser.add_argument(
        "--night",
        default="",
        help="bills per company drawn (seeded) from LOW-HIGH:SHARE ranges, e.g. 0-3:70,4-30:25,100-400:5",
    )
    parser.add_argument(
        "--latency",
        default="off",
        help="answer latency per call: 'roger' (the assumed production shape), JSON of "
        "sandboxes.httpbase.Latency, or off (default); also POST /_control/latency",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    seed: int | str = int(args.seed) if args.seed.lstrip("-").isdigit() else args.seed
    state = RogerState(
        companies=args.companies,
        bills=args.bills,
        seed=seed,
        token_prefix=args.token_prefix,
        end=args.end,
        days=args.days,
        problem_rate=args.problem_rate,
        paid_rate=args.paid_rate,
        history_bills=args.history_bills,
        history_days=args.history_days,
        night=args.night,
    )
    server = SandboxServer((args.host, args.port), RogerHandler, state, Latency.parse(args.latency))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"roger sandbox on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
