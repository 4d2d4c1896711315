"""Run the TraceHub chaincode as a service: `python -m chaincode`.

The peer connects to us (chaincode as a service). Configuration comes from the environment, as the
Fabric chaincode shims expect: CHAINCODE_ID (the package id; or CHAINCODE_ID_FILE naming a
file that holds it), CHAINCODE_SERVER_ADDRESS, and for TLS CHAINCODE_TLS_KEY_FILE and
CHAINCODE_TLS_CERT_FILE.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from chaincode.contract import TraceHubChaincode
from chaincode.server import serve


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    package_id = os.environ.get("CHAINCODE_ID")
    id_file = os.environ.get("CHAINCODE_ID_FILE")
    if not package_id and id_file:
        with open(id_file) as f:
            package_id = f.read().strip()
    address = os.environ.get("CHAINCODE_SERVER_ADDRESS")
    if not package_id or not address:
        print("chaincode: CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS must be set", file=sys.stderr)
        return 2
    key_file = os.environ.get("CHAINCODE_TLS_KEY_FILE")
    cert_file = os.environ.get("CHAINCODE_TLS_CERT_FILE")
    key = Path(key_file).read_bytes() if key_file else None
    cert = Path(cert_file).read_bytes() if cert_file else None
    # The shim logs every message it exchanges with the peer on the "asyncio" logger (at INFO, and
    # a leftover "Look out!" at WARNING per message); only its errors are worth keeping.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger().setLevel(os.environ.get("CHAINCODE_LOG_LEVEL", "WARNING"))
    # The chaincode holds no state of its own (the peer keeps the ledger), so SIGTERM can end the
    # process at once; the shim's own shutdown waits on the peers' open streams.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    logging.warning("chaincode %s listening on %s (TLS %s)", package_id, address, bool(cert))
    try:
        asyncio.run(serve(TraceHubChaincode(), package_id, address, key, cert))
    except KeyboardInterrupt:
        logging.info("chaincode server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
