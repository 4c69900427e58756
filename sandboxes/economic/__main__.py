"""``python -m sandboxes.economic --port 8082 --agreements 3 --token-prefix sbx- --app-secret sbx-app-secret``."""

from __future__ import annotations

import argparse
import sys

from sandboxes import world
from sandboxes.economic.server import EconomicHandler
from sandboxes.economic.state import Sandbox
from sandboxes.economic.validation import SUPPLIERS_POST, VOUCHERS_POST, validator_for
from sandboxes.httpbase import Latency, SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandboxes.economic", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--agreements", type=int, default=3, help="agreements 1..N answer to their tokens")
    parser.add_argument("--token-prefix", default="sbx-")
    parser.add_argument("--app-secret", default=world.DEFAULT_APP_SECRET)
    parser.add_argument(
        "--app-public-token",
        default=world.DEFAULT_APP_PUBLIC_TOKEN,
        help="the app's public token the approval page (/secure/api1/requestaccess.aspx) accepts",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="token bucket of N requests/second per agreement (429 + Retry-After); off by default",
    )
    parser.add_argument("--base-url", default=None, help="base of self links [http://HOST:PORT]")
    parser.add_argument(
        "--latency",
        default="off",
        help="answer latency per call: 'economic' (the assumed production shape), JSON of "
        "sandboxes.httpbase.Latency, or off (default); also POST /_control/latency",
    )
    args = parser.parse_args(argv)

    validator_for(VOUCHERS_POST)  # compile the schemas once, before the first request
    validator_for(SUPPLIERS_POST)
    host_for_links = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    sandbox = Sandbox(
        args.agreements,
        args.token_prefix,
        args.app_secret,
        args.rate_limit or None,
        args.base_url or f"http://{host_for_links}:{args.port}",
        args.app_public_token,
    )
    server = SandboxServer((args.host, args.port), EconomicHandler, sandbox, Latency.parse(args.latency))
    print(
        f"e-conomic sandbox on http://{args.host}:{args.port} ({args.agreements} agreements)",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
