"""The kernel: formats and clients that every part and every outside verifier needs.

Reading schema and signed envelope, GS1 identifiers, Merkle trees, batch and proof formats,
offline checks of proofs and audit bundles, the ledger, IPFS and MQTT clients, configuration
and error kinds. It imports no other part of TraceHub; only its command line (tracehub.cli)
does. docs/architecture.md explains the layering.
"""
