"""Gateway: per-message checks, the ingest loop, the broker's mTLS and ACL, the gateway process."""
