"""`python -m api [--host H] [--port P] [--workers N]`: serve the API with uvicorn."""

from __future__ import annotations

import argparse
import errno
import sys

import uvicorn

from api.config import DEFAULT_HOST, DEFAULT_PORT
from tracehub.config import Settings
from tracehub.metrics import serve_metrics

#: A dashboard's alert stream (/alerts/stream) is a request that never finishes by itself, and
#: uvicorn waits for every request in flight before it exits: with one dashboard open, SIGTERM
#: would never stop the server. After this long the streams are cancelled (their clients
#: reconnect, to this server's successor) and the server exits.
SHUTDOWN_GRACE_S = 5


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--shutdown-grace",
        type=int,
        default=SHUTDOWN_GRACE_S,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may finish before they are cancelled"
        f" (default {SHUTDOWN_GRACE_S})",
    )
    args = parser.parse_args()
    port = Settings.from_env().metrics.api_port
    if port and args.workers == 1:
        # The registry of this process; several workers would each have their own (and only
        # one could bind the port), so with --workers the API serves no metrics.
        try:
            serve_metrics(port, job="api", name="api")
        except OSError as taken:
            if taken.errno != errno.EADDRINUSE:
                raise
            # Another API process on this host (the stack's, a second one on another port)
            # serves there already: this one still serves the API, without metrics.
            print(
                f"api: metrics port {port} is in use (another API process?): serving no"
                " metrics; set TRACEHUB_API_METRICS_PORT to a free port, or 0 for none",
                file=sys.stderr,
            )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=args.shutdown_grace,
    )


if __name__ == "__main__":
    main()
