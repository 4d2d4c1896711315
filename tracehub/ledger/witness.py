"""A ledger witness: a read-only HTTP view of batch anchors, run by an organisation other than the
hub, on its own peer with its own identity.

The buyer page verifies every record's Merkle path in the browser, but the root it compares with
must come from somewhere: from the hub alone, a hub that lied consistently would pass. A witness
answers the same question ("which root is anchored for this batch?") from another
organisation's copy of the ledger, so the page can say whose peer confirmed it (docs/witness.md).

    python -m tracehub.ledger.witness --org 2 --port 18090

`GET /anchors/{batch_id}` → `{"msp_id", "peer", "anchor": {...}}` (404 when not anchored, 502
when the peer cannot be reached); `GET /device-ca` → `{"msp_id", "peer", "device_ca": {...}}`
(the device CA the ledger records, `GetDeviceCA`) and `GET /certificates/{fingerprint}` →
`{"msp_id", "peer", "certificate": {...}}` (a device certificate's record with its revocation,
`GetDeviceCertificate`), so the page checks signatures against certificates the hub does not
serve (404 when the ledger has none); `GET /healthz`. Answers are public ledger data and carry
`Access-Control-Allow-Origin: *`, so any hub's page may ask; nothing can be written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tracehub.config import Settings

from .contract import Contract
from .errors import EvaluateError, LedgerError
from .local import connect_org

__all__ = ["witness_app"]

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}


def witness_app(contract: Contract, *, msp_id: str, peer: str) -> Starlette:
    """The witness's HTTP app over ``contract`` (the chaincode on the witness's own peer)."""

    def answer(status: int, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=_HEADERS)

    def anchor(request: Request) -> JSONResponse:
        batch_id = request.path_params["batch_id"]
        try:
            found = json.loads(contract.evaluate("GetAnchor", batch_id))
        except EvaluateError as exc:
            if "is not anchored" in str(exc):
                return answer(404, {"error": "not_anchored", "batch_id": batch_id})
            return answer(502, {"error": "ledger_unavailable", "msp_id": msp_id})
        except LedgerError:
            return answer(502, {"error": "ledger_unavailable", "msp_id": msp_id})
        return answer(200, {"msp_id": msp_id, "peer": peer, "anchor": found})

    def record(name: str, function: str, *args: str) -> JSONResponse:
        try:
            found = json.loads(contract.evaluate(function, *args))
        except EvaluateError as exc:
            if "not found" in str(exc) or "no device CA" in str(exc):
                return answer(404, {"error": "not_recorded", "msp_id": msp_id})
            return answer(502, {"error": "ledger_unavailable", "msp_id": msp_id})
        except LedgerError:
            return answer(502, {"error": "ledger_unavailable", "msp_id": msp_id})
        return answer(200, {"msp_id": msp_id, "peer": peer, name: found})

    def device_ca(request: Request) -> JSONResponse:
        return record("device_ca", "GetDeviceCA")

    def certificate(request: Request) -> JSONResponse:
        fingerprint = request.path_params["fingerprint"]
        if not _FINGERPRINT.fullmatch(fingerprint):
            return answer(404, {"error": "not_recorded", "msp_id": msp_id})
        return record("certificate", "GetDeviceCertificate", fingerprint)

    def healthz(request: Request) -> JSONResponse:
        return answer(200, {"status": "ok", "msp_id": msp_id, "peer": peer})

    return Starlette(
        routes=[
            # Sync endpoints: the ledger client blocks; Starlette runs them in its thread pool.
            Route("/anchors/{batch_id:path}", anchor, methods=["GET"]),
            Route("/device-ca", device_ca, methods=["GET"]),
            Route("/certificates/{fingerprint}", certificate, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracehub.ledger.witness", description=__doc__)
    parser.add_argument("--org", type=int, default=2, help="whose peer and identity (default 2)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args(argv)
    fabric = Settings.from_env().fabric
    with connect_org(fabric, args.org) as gateway:
        contract = gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
        app = witness_app(
            contract, msp_id=fabric.msp_id(args.org), peer=fabric.peer_endpoints[args.org]
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
