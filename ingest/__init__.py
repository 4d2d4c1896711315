"""The storage side: PostgreSQL schema and reading store, EPCIS storage, proofs and bundles.

- schema, migrations/: the database, migrated by ``python -m ingest migrate``
- store:       verified readings once by (device, seq), chain state, quarantine, batches, outbox
- epcis/:      EPCIS capture and query, event batches anchored on the ledger, readings as events
- inspections: inspection reports (PDF on IPFS, an anchored EPCIS event)
- proofs:      the one builder of reading and event proofs
- bundle:      selecting records for an audit bundle and building it
- auditing:    the auditor's searches and re-verification against IPFS and the ledger
- lot_view:    what the store holds of a lot, for the buyer's page
- monitoring:  shipments, latest readings and condition series, for the logistics dashboard
- errors:      IngestError, the root of this package's errors

Formats and their offline checks (Merkle trees, batch layout, proofs, bundles) are the kernel's.
"""
