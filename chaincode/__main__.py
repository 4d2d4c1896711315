"""Run the TraceHub chaincode as a service: `python -m chaincode`.

The peer connects to us (chaincode as a service). Configuration comes from the environment, as the
Fabric chaincode shims expect: CHAINCODE_ID (the package id), CHAINCODE_SERVER_ADDRESS, and for
TLS CHAINCODE_TLS_KEY_FILE / CHAINCODE_TLS_CERT_FILE.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from fabric_chaincode_python.fabric_shim import server

from chaincode.contract import TraceHubChaincode


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    package_id = os.environ.get("CHAINCODE_ID")
    address = os.environ.get("CHAINCODE_SERVER_ADDRESS")
    if not package_id or not address:
        print("chaincode: CHAINCODE_ID and CHAINCODE_SERVER_ADDRESS must be set", file=sys.stderr)
        return 2
    key_file = os.environ.get("CHAINCODE_TLS_KEY_FILE")
    cert_file = os.environ.get("CHAINCODE_TLS_CERT_FILE")
    key = open(key_file, "rb").read() if key_file else None
    cert = open(cert_file, "rb").read() if cert_file else None
    # SIGTERM ends the server like Ctrl-C does, so `make down` stops it cleanly.
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    logging.info("chaincode %s listening on %s (TLS %s)", package_id, address, bool(cert))
    try:
        server.start(TraceHubChaincode, cc_id=package_id, address=address, key=key, cert=cert)
    except KeyboardInterrupt:
        logging.info("chaincode server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
