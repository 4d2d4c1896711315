"""Wait until the local network can endorse: `python -m tracehub.ledger.ready [seconds]`.

After a restart each peer answers queries at once, but the gateway can collect endorsements from
the other organisation only once gossip has found that org's peer again. An endorsement of a
read-only function, through each org's gateway, proves the policy (both orgs) can be satisfied.
Nothing is submitted, so the probe leaves no trace on the ledger.
"""

from __future__ import annotations

import sys
import time

from tracehub.config import Settings

from .errors import LedgerError
from .local import connect_org


def wait_until_endorsable(settings: Settings, timeout: float = 120.0) -> float:
    """Seconds waited until both orgs' gateways can endorse; raises TimeoutError otherwise."""
    fabric = settings.fabric
    started = time.monotonic()
    pending = set(fabric.peer_endpoints)
    last_error: LedgerError | None = None
    while pending:
        for org in sorted(pending):
            with connect_org(fabric, org) as gateway:
                contract = gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
                try:
                    contract.new_proposal("RecordExists", args=["readiness-probe"]).endorse()
                    pending.discard(org)
                except LedgerError as exc:
                    last_error = exc
        if pending and time.monotonic() - started > timeout:
            raise TimeoutError(f"org(s) {sorted(pending)} cannot endorse: {last_error}")
        if pending:
            time.sleep(1)
    return time.monotonic() - started


def main() -> int:
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
    try:
        waited = wait_until_endorsable(Settings.from_env(), timeout)
    except TimeoutError as exc:
        print(f"fabric: not ready: {exc}", file=sys.stderr)
        return 1
    print(f"fabric: both organisations endorse (waited {waited:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
