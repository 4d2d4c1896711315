"""TraceHub: shared pieces used by several parts (ledger client, IPFS client, configuration)."""
