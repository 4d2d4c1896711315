"""Public PKI evidence (no sign-in), so the buyer page can check every envelope's signature,
certificate chain and revocation the way `tracehub verify` does:

- ``GET /pki/crls/device-ca``: the device CA's current CRL (DER), as the hub's PKI keeps it;
- ``GET /ledger/device-ca``: the device CA recorded on the ledger (``GetDeviceCA``);
- ``GET /ledger/certificates/{fingerprint}``: a device certificate's ledger record
  (``GetDeviceCertificate``: PEM, status, revocation time and reason).

The ledger answers come through Org2's peer (else Org1's), as the anchors do (api/proofs.py); a
ledger witness serves the same two records from its own organisation's peer.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from api.ledger import AUDIT_ORG, HUB_ORG, AppLedger, Ledger
from api.routing import Router
from certs.published import device_ca_crl_der, device_ca_record, device_certificate
from certs.registry import LedgerRegistry

router = Router(tags=["proofs"])


def _registry(ledger: AppLedger) -> LedgerRegistry:
    # Opening a gateway blocks: called in the thread pool.
    return LedgerRegistry(ledger.contract(AUDIT_ORG, HUB_ORG))


@router.get(
    "/pki/crls/device-ca",
    response_class=Response,
    responses={
        200: {"content": {"application/pkix-crl": {}}, "description": "the CRL, DER"},
        404: {"description": "no CRL published"},
    },
)
async def device_ca_crl(request: Request) -> Response:
    """The device CA's current CRL: signed by the device CA, so it is checked, not trusted."""
    der = await run_in_threadpool(device_ca_crl_der, request.app.state.config.stack.pki_dir)
    # Short caching only: a revocation must reach the page within a minute.
    return Response(der, media_type="application/pkix-crl", headers={"Cache-Control": "max-age=60"})


@router.get("/ledger/device-ca", responses={404: {"description": "none recorded"}})
async def device_ca(ledger: Ledger) -> dict[str, Any]:
    """The device CA certificate as the ledger records it."""
    return await run_in_threadpool(lambda: device_ca_record(_registry(ledger)))


@router.get("/ledger/certificates/{fingerprint}", responses={404: {"description": "not enrolled"}})
async def certificate(fingerprint: str, ledger: Ledger) -> dict[str, Any]:
    """A device certificate's ledger record, by the SHA-256 of its DER (lower-case hex)."""
    return await run_in_threadpool(lambda: device_certificate(_registry(ledger), fingerprint))
