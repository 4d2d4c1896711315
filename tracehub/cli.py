"""`tracehub`: the operator's command line.

    tracehub certs init                      create the CAs, CRLs and service certificates
    tracehub certs org ORG_ID                an organisation's staff MQTT client certificate
    tracehub certs gateway NAME              a gateway process's broker identities, admitted
    tracehub certs site NAME                 a site broker's identity (its bridge), admitted
    tracehub devices enrol ID [--csr FILE]   issue a device certificate and record it on the ledger
    tracehub devices revoke ID --reason R    revoke it, update the CRL, record it, cut the device
                                             off at the broker (disconnected, no rights)
    tracehub devices list [--json]           every certificate issued, with its status
    tracehub devices show ID                 the device's record on the ledger
    tracehub verify PROOF                    check a reading's or EPCIS event's proof end to end
    tracehub verify PROOF --document FILE    check that FILE is a document the proven event names

Every command has --help.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.broker import (
    BrokerEndpoint,
    admit_gateway,
    admit_site,
    cut_off_device,
    readmit_device,
)
from certs.pki import PKI, PKIError
from certs.registry import LedgerRegistry
from tracehub.config import PROJECT_DIR, Settings
from tracehub.ledger import Gateway, LedgerError
from tracehub.ledger.local import connect_org, connect_registrar
from tracehub.pki_names import org_alert_topic

if TYPE_CHECKING:  # at run time imported inside the commands, like their other modules
    from tracehub.audit import AuditResult

# RFC 5280 reason names, as they appear in CRLs: keyCompromise, superseded, ...
REASONS = {
    flag.value: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl
}


def _registry(settings: Settings) -> tuple[Gateway, LedgerRegistry]:
    """The registrar's gateway (close it) and the device registry on it."""
    gateway = connect_registrar(settings.fabric)
    contract = gateway.get_network(settings.fabric.channel).get_contract(settings.fabric.chaincode)
    return gateway, LedgerRegistry(contract)


def certs_init(args: argparse.Namespace, settings: Settings) -> int:
    pki = PKI(settings.pki_dir)
    created = pki.init()
    # CRLs are valid for days, not forever: every start re-issues them, so a broker started
    # from this PKI never holds an expired CRL (cron `tracehub certs refresh-crls` for uptime).
    pki.refresh_crls()
    state = "created" if created else "already present"
    print(f"certs: PKI {state} in {settings.pki_dir}; CRLs re-issued")
    return 0


def certs_ledger_ca(args: argparse.Namespace, settings: Settings) -> int:
    ca = PKI(settings.pki_dir).device_ca_certificate()
    gateway, registry = _registry(settings)
    with gateway:
        recorded = registry.record_device_ca(ca.public_bytes(Encoding.PEM))
    print(f"certs: device CA on the ledger: {recorded['subject']} ({recorded['tx_id']})")
    return 0


def certs_refresh_crls(args: argparse.Namespace, settings: Settings) -> int:
    PKI(settings.pki_dir).refresh_crls()
    print(f"certs: CRLs re-issued in {settings.pki_dir}")
    return 0


def certs_org(args: argparse.Namespace, settings: Settings) -> int:
    pki = PKI(settings.pki_dir)
    cert = pki.issue_organisation_certificate(args.org_id, validity_days=args.days)
    cert_path, key_path, chain_path = pki.org_paths(args.org_id)
    print(f"certs: {cert.subject.rfc4514_string()} until {cert.not_valid_after_utc:%Y-%m-%d}")
    print(f"  certificate {cert_path}\n  key         {key_path}\n  chain       {chain_path}")
    print(f"  may read    {org_alert_topic(args.org_id)}")
    return 0


def certs_gateway(args: argparse.Namespace, settings: Settings) -> int:
    pki = PKI(settings.pki_dir)
    if args.no_broker:
        names = pki.ensure_gateway_certificates(args.name)
    else:
        names = admit_gateway(pki, BrokerEndpoint.of(settings), args.name)
    for name in names:
        print(f"certs: service:{name} in {pki.service_paths(name)[0].parent}")
    print("  admitted by the broker" if not args.no_broker else "  admitted at its next start")
    return 0


def certs_site(args: argparse.Namespace, settings: Settings) -> int:
    pki = PKI(settings.pki_dir)
    if args.no_broker:
        name = pki.ensure_site_certificate(args.name)
        pki.add_site_devices(args.name, args.device)
    else:
        name = admit_site(pki, BrokerEndpoint.of(settings), args.name, args.device)
    print(f"certs: service:{name} in {pki.service_paths(name)[0].parent}")
    print("  admitted by the broker" if not args.no_broker else "  admitted at its next start")
    print("  may publish tracehub/v1/devices/+/readings and .../dropped at the hub")
    listed = pki.site_devices(args.name)
    print(f"  and read the acknowledgements of its {len(listed)} device(s): {' '.join(listed)}")
    print(f"  start it: network/mosquitto/site-broker.sh {args.name}")
    return 0


def devices_enrol(args: argparse.Namespace, settings: Settings) -> int:
    pki = PKI(settings.pki_dir)
    if args.csr:
        issued = pki.enrol_device(
            args.device_id,
            Path(args.csr).read_bytes(),
            validity_days=args.days,
            replace=args.replace,
        )
    else:
        issued = pki.enrol_simulated_device(
            args.device_id, validity_days=args.days, replace=args.replace
        )
    print(f"enrolled {issued.device_id}: serial {issued.serial:x}")
    print(f"  fingerprint sha256 {issued.fingerprint_sha256}")
    print(f"  valid {issued.not_before.isoformat()} .. {issued.not_after.isoformat()}")
    print(f"  certificate {settings.pki_dir / 'devices' / issued.device_id / 'cert.pem'}")
    if not args.no_broker and any(r.status == "revoked" for r in pki.device(args.device_id)):
        # Enrolled again after a revocation: the broker must forget it cut this name off.
        try:
            readmit_device(pki, BrokerEndpoint.of(settings), args.device_id)
        except PKIError as exc:
            print(f"  the broker still refuses {args.device_id} until it restarts: {exc}")
    if args.no_ledger:
        return 0
    gateway, registry = _registry(settings)
    with gateway:
        result = registry.enrol(issued.certificate_pem)
    print(f"  on the ledger: tx {result.tx_id}, block {result.block_number}")
    return 0


def devices_revoke(args: argparse.Namespace, settings: Settings) -> int:
    pki = PKI(settings.pki_dir)
    revoked = pki.revoke_device(args.device_id, REASONS[args.reason])
    for record in revoked:
        print(f"revoked {record.device_id} {record.fingerprint_sha256} ({args.reason})")
    if not args.no_ledger:
        gateway, registry = _registry(settings)
        with gateway:
            for record in revoked:
                result = registry.revoke(
                    record.device_id, fingerprint=record.fingerprint_sha256, reason=args.reason
                )
                print(f"  on the ledger: tx {result.tx_id}, block {result.block_number}")
    if not args.no_broker:
        # At once, without a restart: the broker disconnects the device and grants its name
        # nothing. Its handshake is refused from the broker's next start, which loads the CRL.
        cut_off_device(pki, BrokerEndpoint.of(settings), args.device_id)
        print(f"  cut off at the broker: {args.device_id} disconnected, no rights")
    if args.restart_broker:
        stack = PROJECT_DIR / "network" / "stack.sh"
        subprocess.run(["bash", str(stack), "reload-broker"], check=True)
    return 0


def devices_list(args: argparse.Namespace, settings: Settings) -> int:
    records = PKI(settings.pki_dir).list_devices()
    if args.json:
        rows = [
            {
                "device_id": r.device_id,
                "serial": format(r.serial, "x"),
                "fingerprint_sha256": r.fingerprint_sha256,
                "status": r.status,
                "not_before": r.not_before.isoformat(),
                "not_after": r.not_after.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                "revocation_reason": r.revocation_reason,
            }
            for r in records
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'device':<24} {'status':<8} {'not after':<26} fingerprint")
    for r in records:
        print(
            f"{r.device_id:<24} {r.status:<8} {r.not_after.isoformat():<26} {r.fingerprint_sha256}"
        )
    return 0


def devices_show(args: argparse.Namespace, settings: Settings) -> int:
    gateway, registry = _registry(settings)
    with gateway:
        record = registry.device(args.device_id)
    for certificate in record["certificates"]:
        certificate.pop("certificate_pem", None)
    print(json.dumps(record, indent=2))
    return 0


def verify(args: argparse.Namespace, settings: Settings) -> int:
    from certs.registry import LedgerCertificateDirectory
    from tracehub.audit import verify_proof
    from tracehub.bundle import is_bundle
    from tracehub.epcis.proof import is_event_proof
    from tracehub.ipfs import KuboClient
    from tracehub.ipfs_replicated import content_store
    from tracehub.proof import Proof, ProofFormatError
    from tracehub.verify import TrustStore

    try:
        text = Path(args.proof).read_bytes()
        if is_bundle(text):
            return _verify_bundle(text, args, settings)
        if is_event_proof(text):
            return _verify_event(text, args, settings)
        if args.document:
            print("verify: --document needs an EPCIS event proof", file=sys.stderr)
            return 2
        proof = Proof.from_json(text)
    except (OSError, ProofFormatError) as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    bundle = Path(args.ca_bundle or settings.pki_dir / "ca-bundle.pem")
    crl = Path(args.crl or settings.pki_dir / "crl.pem")
    # An auditor checks readings long after the CRL's next update: a stale CRL still says
    # what was revoked when it was issued.
    trust = TrustStore.from_pem_files(bundle, crl, allow_stale_crls=True)
    with (
        KuboClient(args.ipfs) if args.ipfs else content_store(settings) as ipfs,
        connect_org(settings.fabric, args.org) as gateway,
    ):
        contract = gateway.get_network(proof.channel).get_contract(proof.chaincode)
        directory = LedgerCertificateDirectory(LedgerRegistry(contract))
        result = verify_proof(proof, ipfs=ipfs, ledger=contract, trust=trust, directory=directory)
    return _report(
        result,
        f"reading {proof.reading_hash}",
        f"verified: reading {proof.reading_hash} is #{proof.index} of batch {proof.batch_id}, "
        f"anchored in tx {proof.tx_id}, block {proof.block_number}",
    )


def _report(result: AuditResult, subject: str, verified: str) -> int:
    """Print the audit's steps; 0 after ``verified`` if it passed, else 1 (exit status)."""
    for step in result.passed:
        print(f"  ok    {step}")
    if not result.ok:
        print(f"  FAIL  {result.failure}")
        print(f"proof of {subject} does NOT verify")
        return 1
    print(verified)
    return 0


def _verify_event(text: bytes, args: argparse.Namespace, settings: Settings) -> int:
    """`tracehub verify` for an EPCIS event proof (kind "epcis-event")."""
    from tracehub.audit import verify_document, verify_event_proof
    from tracehub.epcis.proof import EventProof
    from tracehub.ipfs import KuboClient
    from tracehub.ipfs_replicated import content_store

    proof = EventProof.from_json(text)
    document = Path(args.document).read_bytes() if args.document else None
    with (
        KuboClient(args.ipfs) if args.ipfs else content_store(settings) as ipfs,
        connect_org(settings.fabric, args.org) as gateway,
    ):
        contract = gateway.get_network(proof.channel).get_contract(proof.chaincode)
        if document is not None:
            result = verify_document(document, proof, ipfs=ipfs, ledger=contract)
        else:
            result = verify_event_proof(proof, ipfs=ipfs, ledger=contract)
    if document is not None:
        return _report(
            result,
            f"document {args.document}",
            f"verified: {args.document} (sha256 {hashlib.sha256(document).hexdigest()}) is"
            f" named by event {proof.event_id}, #{proof.index} of batch {proof.batch_id},"
            f" anchored in tx {proof.tx_id}, block {proof.block_number}",
        )
    return _report(
        result,
        f"event {proof.event_id}",
        f"verified: event {proof.event_id} ({proof.event_hash}) is #{proof.index} of batch "
        f"{proof.batch_id}, anchored in tx {proof.tx_id}, block {proof.block_number}",
    )


def _verify_bundle(text: bytes, args: argparse.Namespace, settings: Settings) -> int:
    """`tracehub verify BUNDLE [--offline]`: an audit bundle (docs/audit-bundle.md)."""
    from tracehub.bundle import BundleError, load_bundle, verify_bundle

    try:
        bundle = load_bundle(text)
    except BundleError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    ca = Path(args.ca_bundle).read_bytes() if args.ca_bundle else None
    if args.offline:
        report = verify_bundle(bundle, ca_bundle_pem=ca)
    else:
        with connect_org(settings.fabric, args.org) as gateway:
            contract = gateway.get_network(str(bundle.get("channel", "trace"))).get_contract(
                str(bundle.get("chaincode", "tracehub"))
            )
            report = verify_bundle(bundle, ledger=contract, ca_bundle_pem=ca)
    for root in report.roots:
        print(
            f"  trust root sha256 {root}"
            + ("" if ca else " (from the bundle; pin it with --ca-bundle)")
        )
    print(f"  ok    {report.batches_ok} batches, {report.records_ok} records")
    for failure in report.failures:
        print(f"  FAIL  {failure}")
    where = "offline" if args.offline else "against the ledger"
    if not report.ok:
        print(f"bundle does NOT verify ({len(report.failures)} failures, {where})")
        return 1
    print(f"verified {where}: {report.records_ok} records in {report.batches_ok} batches")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tracehub", description="TraceHub operator commands.")
    groups = top.add_subparsers(dest="group", required=True)

    certs = groups.add_parser("certs", help="the PKI: CAs, CRLs, service certificates")
    certs_commands = certs.add_subparsers(dest="command", required=True)
    certs_commands.add_parser("init", help="create the PKI (idempotent)").set_defaults(
        handler=certs_init
    )
    certs_commands.add_parser(
        "ledger-ca", help="record the device CA on the ledger (idempotent; set-up runs it)"
    ).set_defaults(handler=certs_ledger_ca)
    certs_commands.add_parser(
        "refresh-crls", help="re-issue every CA's CRL (run daily; restart the broker after)"
    ).set_defaults(handler=certs_refresh_crls)
    org = certs_commands.add_parser(
        "org",
        help="issue (or re-issue) an organisation's staff MQTT client certificate, CN org:<id>",
    )
    org.add_argument("org_id", help="the organisation's id (as in the organisations table)")
    org.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    org.set_defaults(handler=certs_org)

    gateway = certs_commands.add_parser(
        "gateway",
        help="issue (if needed) a gateway process's broker identities, service:gateway-NAME and"
        " service:gateway-NAME.alerts, and admit them at the running broker",
    )
    gateway.add_argument("name", help="the process's name, as `python -m gateway --name NAME`")
    gateway.add_argument(
        "--no-broker", action="store_true", help="only issue; the broker admits them at start"
    )
    gateway.set_defaults(handler=certs_gateway)

    site = certs_commands.add_parser(
        "site",
        help="issue (if needed) a site broker's identity, service:site-NAME (its listener and"
        " its bridge), and admit it at the running hub broker with the role `site`",
    )
    site.add_argument("name", help="the site's name, as `network/mosquitto/site-broker.sh NAME`")
    site.add_argument(
        "--device",
        action="append",
        default=[],
        help="a device at this site (repeatable; added to those listed before): the bridge"
        " brings its acknowledgements back; restart the site broker to pick new ones up",
    )
    site.add_argument(
        "--no-broker", action="store_true", help="only issue; the broker admits it at start"
    )
    site.set_defaults(handler=certs_site)

    devices = groups.add_parser("devices", help="device enrolment, revocation and listing")
    commands = devices.add_subparsers(dest="command", required=True)
    enrol = commands.add_parser(
        "enrol", help="issue a device certificate from a CSR (or a generated key)"
    )
    enrol.add_argument("device_id")
    enrol.add_argument("--csr", help="PEM CSR from the device; without it a key is generated")
    enrol.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    enrol.add_argument("--replace", action="store_true", help="issue even if one is active")
    enrol.add_argument(
        "--no-ledger",
        action="store_true",
        help="do not record on the ledger (the gateway refuses its readings until it is)",
    )
    enrol.add_argument(
        "--no-broker", action="store_true", help="do not readmit a revoked device at the broker"
    )
    enrol.set_defaults(handler=devices_enrol)

    revoke = commands.add_parser("revoke", help="revoke a device's certificates")
    revoke.add_argument("device_id")
    revoke.add_argument("--reason", choices=sorted(REASONS), default="unspecified")
    revoke.add_argument("--no-ledger", action="store_true", help="do not record on the ledger")
    revoke.add_argument(
        "--no-broker", action="store_true", help="do not cut the device off at the broker"
    )
    revoke.add_argument(
        "--restart-broker",
        action="store_true",
        help="restart the broker now, so it loads the CRL (every client reconnects)",
    )
    revoke.set_defaults(handler=devices_revoke)

    listing = commands.add_parser("list", help="every certificate issued, with its status")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=devices_list)

    show = commands.add_parser("show", help="the device's enrolments and revocations on the ledger")
    show.add_argument("device_id")
    show.set_defaults(handler=devices_show)

    check = groups.add_parser(
        "verify", help="verify a reading's proof from IPFS, the PKI and the ledger (no database)"
    )
    check.add_argument("proof", help="proof JSON file, or an audit bundle")
    check.add_argument(
        "--offline", action="store_true", help="bundles: check without asking the ledger"
    )
    check.add_argument("--org", type=int, default=2, help="whose peer to ask (default 2)")
    check.add_argument("--ca-bundle", help="CA certificates (default: the stack's PKI)")
    check.add_argument("--crl", help="CRLs (default: the stack's PKI)")
    check.add_argument("--ipfs", help="Kubo RPC URL (default: the stack's)")
    check.add_argument(
        "--document",
        help="event proofs: a file the event must name by its SHA-256 (a trade document's PDF"
        " or JSON, an inspection report)",
    )
    check.set_defaults(handler=verify)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        code: int = args.handler(args, settings)
    except PKIError as exc:
        print(f"tracehub: {exc}", file=sys.stderr)
        return 1
    except LedgerError as exc:
        print(f"tracehub: ledger: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
