"""The storage side: PostgreSQL schema and reading store, EPCIS storage, proofs and bundles.

- schema, migrations/: the database, migrated by ``python -m ingest migrate``
- store:       verified readings once by (device, seq), chain state, quarantine, batches, outbox
- epcis/:      EPCIS capture and query, event batches anchored on the ledger, readings as events
- inspections: inspection reports (PDF on IPFS, an anchored EPCIS event)
- proofs:      the one builder of reading and event proofs
- bundle:      building audit bundles

Formats and their offline checks (Merkle trees, batch layout, proofs, bundles) are the kernel's.
"""
