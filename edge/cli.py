"""`tracehub-edge`: run the edge agent, or show a running agent's status.

tracehub-edge run --config agent.toml
tracehub-edge status --config agent.toml [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from edge import config as edge_config


def run(args: argparse.Namespace) -> int:
    from edge.agent import Agent  # the status command needs none of the agent's imports

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    # pymodbus logs an ERROR for every sensor timeout; the agent counts them in its status.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    agent = Agent(edge_config.load(Path(args.config)))
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)
        agent.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    logging.info("agent %s running; spool %s", agent.config.device_id, agent.config.spool_path)
    agent.wait()
    agent.stop()
    logging.info("agent stopped; %d readings wait in the spool", agent.spool.depth())
    return 0


def status(args: argparse.Namespace) -> int:
    config = edge_config.load(Path(args.config))
    try:
        state = json.loads(config.status_path.read_text())
    except FileNotFoundError:
        print(f"no status at {config.status_path}: the agent has not run", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    age = time.time() - datetime.fromisoformat(state["updated_at"]).timestamp()
    running = "running" if age < 5 else f"not running (status is {age:.0f} s old)"
    spool, publisher, acks = state["spool"], state["publisher"], state["hub_acks"]
    print(f"agent {state['device']}: {running}")
    print(
        f"  spool depth {spool['depth']} ({spool['unsent']} unsent, the rest awaiting the hub), "
        f"last seq {spool['last']}, dropped {spool['dropped']}"
    )
    print(
        f"  broker {'connected' if publisher['connected'] else 'disconnected'}: "
        f"{publisher['acknowledged']} acknowledged, {publisher['resent']} resent, "
        f"{publisher['refused']} refused, last error {publisher['last_error'] or '-'}"
    )
    print(
        f"  hub: stored through seq {acks['last_through']}, {acks['last_missing']} missing, "
        f"{acks['settled']} settled, last acknowledgement {acks['last_ack_at'] or 'never'}"
    )
    for name, reader in state["readers"].items():
        decoder = reader["decoder"]
        print(
            f"  reader {name} ({reader['protocol']} on {reader['port']}): "
            f"last read {reader['last_read_at'] or 'never'} {reader['last_epc'] or ''}; "
            f"{reader['tag_reads']} reads, {reader['read_events']} events; errors {decoder}"
        )
    for name, sensor in state["sensors"].items():
        print(f"  sensor {name}: {sensor}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tracehub-edge", description="TraceHub edge agent.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run the agent until SIGTERM or Ctrl-C")
    run_parser.add_argument("--config", required=True, help="agent TOML file")
    run_parser.add_argument("--log-level", default="INFO")
    run_parser.set_defaults(handler=run)
    status_parser = commands.add_parser("status", help="spool depth, last read per port, errors")
    status_parser.add_argument("--config", required=True, help="agent TOML file")
    status_parser.add_argument("--json", action="store_true")
    status_parser.set_defaults(handler=status)
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except edge_config.EdgeConfigError as exc:
        print(f"tracehub-edge: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
