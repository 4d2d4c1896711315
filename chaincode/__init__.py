"""TraceHub chaincode: the ledger side of traceability, run as a chaincode-as-a-service process."""
