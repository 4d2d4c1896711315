"""Persistence: PostgreSQL writer, IPFS batches, Merkle trees, ledger anchoring (issue 5)."""
