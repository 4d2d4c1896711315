"""`tracehub-edge`: run the edge agent, or show a running agent's status.

tracehub-edge run --config agent.toml
tracehub-edge status --config agent.toml [--json]

`status` exits 0 when the agent runs, 3 when it does not (the LSB convention for a stopped
service), 1 when it never ran. Whether it runs is judged by the lock the agent holds while its
process lives (edge.liveness), not by the status file, which a killed agent leaves behind.
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
from typing import Any

from edge import config as edge_config
from edge.liveness import AlreadyRunningError, probe

NOT_RUNNING = 3


def run(args: argparse.Namespace) -> int:
    # the status command needs none of the agent's imports
    from prometheus_client import REGISTRY

    from edge.agent import Agent
    from edge.metrics import AgentCollector
    from tracehub.config import Settings
    from tracehub.metrics import serve_metrics

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    # pymodbus logs an ERROR for every sensor timeout; the agent counts them in its status.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    agent = Agent(edge_config.load(Path(args.config)))
    settings = Settings.from_env()
    REGISTRY.register(AgentCollector(lambda: agent.last_status))
    endpoint = serve_metrics(
        settings.metrics.edge_port,
        job="edge",
        name=agent.config.device_id,
        targets_dir=settings.metrics_targets_dir,
    )
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
    endpoint.close()
    logging.info("agent stopped; %d readings wait in the spool", agent.spool.depth())
    return 0


def _since(moment: str | None) -> str:
    """An ISO time and how long ago it was."""
    if not moment:
        return "never"
    age = time.time() - datetime.fromisoformat(moment).timestamp()
    return f"{moment} ({_ago(age)})"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _liveness(state: dict[str, Any], running: bool, pid: int | None) -> str:
    if running:
        return f"running (pid {pid}, started {_since(state.get('started_at'))})"
    if state.get("stopped_at"):
        return f"not running (stopped cleanly at {_since(state['stopped_at'])})"
    # Killed or crashed: its last status write is the last time it was known alive.
    return f"not running (did not stop cleanly; last alive at {_since(state.get('updated_at'))})"


def _last_error(publisher: dict[str, Any], running: bool) -> str:
    error, at = publisher.get("last_error"), publisher.get("last_error_at")
    if not error:
        return "no error"
    since = publisher.get("connected_since") or ""
    resolved = (
        running
        and publisher.get("connected")
        and at
        and since
        and datetime.fromisoformat(at) < datetime.fromisoformat(since)
    )
    if resolved:
        return f"last error at {_since(at)}, before the connection of {since} (resolved): {error}"
    return f"last error at {_since(at)}{' (current)' if running else ''}: {error}"


def status(args: argparse.Namespace) -> int:
    config = edge_config.load(Path(args.config))
    live = probe(config.lock_path)
    try:
        state = json.loads(config.status_path.read_text())
    except FileNotFoundError:
        print(f"no status at {config.status_path}: the agent has not run", file=sys.stderr)
        return 1
    if not live.running:
        state["running"] = False  # whatever a killed agent's last status said
    if args.json:
        print(json.dumps(state, indent=2))
        return 0 if live.running else NOT_RUNNING
    spool, publisher, acks = state["spool"], state["publisher"], state["hub_acks"]
    print(f"agent {state['device']}: {_liveness(state, live.running, live.pid)}")
    print(f"  counters since {state.get('counters_since') or state.get('started_at')}")
    journal = state.get("journal", {}).get("sightings", 0)
    print(
        f"  spool depth {spool['depth']} ({spool['unsent']} unsent, the rest awaiting the hub), "
        f"last seq {spool['last']}, dropped {spool['dropped']}; {journal} sightings journaled"
    )
    if live.running:
        connection = (
            f"connected since {publisher.get('connected_since') or '?'}"
            if publisher["connected"]
            else "disconnected"
        )
    else:
        connection = "not connected (agent not running)"
    print(
        f"  broker {connection}: "
        f"{publisher['acknowledged']} acknowledged, {publisher['resent']} resent, "
        f"{publisher['refused']} refused; {_last_error(publisher, live.running)}"
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
        fault = sensor.get("fault")
        health = f"FAULT {fault} since {sensor.get('fault_since')}" if fault else "ok"
        print(f"  sensor {name}: {health}; {sensor}")
    return 0 if live.running else NOT_RUNNING


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
    except (edge_config.EdgeConfigError, AlreadyRunningError) as exc:
        print(f"tracehub-edge: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
