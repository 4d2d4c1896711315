"""Connect to the local stack's peers with the identities cryptogen made at set-up."""

from __future__ import annotations

from tracehub.config import FabricSettings

from .failover import Failover
from .gateway import Gateway, Timeouts
from .identity import load_msp_identity


def connect_org(
    fabric: FabricSettings, org: int, user: str = "User1", timeouts: Timeouts | None = None
) -> Gateway:
    """A Gateway to org ``org``'s peers, as that org's ``user`` (e.g. ``User1`` or ``Admin``).

    In the ``ha`` topology the gateway fails over between the org's peers and rides out an
    orderer election; in ``single`` it has one peer and tries each call once.
    """
    identity, signer = load_msp_identity(fabric.user_msp_dir(org, user), fabric.msp_id(org))
    return Gateway.connect(
        fabric.gateway_endpoints(org),
        identity=identity,
        signer=signer,
        tls_root_cert=fabric.tls_ca_file(org).read_bytes(),
        timeouts=timeouts,
        failover=Failover() if fabric.topology == "ha" else None,
    )


def connect_registrar(fabric: FabricSettings, timeouts: Timeouts | None = None) -> Gateway:
    """A Gateway as the hub's registrar: Org1's admin identity, the only one the chaincode lets
    record the device CA and enrol or revoke devices (the services anchor as ``User1``)."""
    return connect_org(fabric, 1, user="Admin", timeouts=timeouts)
