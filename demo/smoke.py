"""`make demo`: one smoke transaction on the ledger and one object on IPFS, on the running stack.

Org1 (the hub) writes a record through the Fabric Gateway; Org2 (logistics) reads it back;
Kubo stores a document and returns the same bytes by CID.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from tracehub.config import Settings
from tracehub.ipfs_replicated import content_store
from tracehub.ledger import LedgerError
from tracehub.ledger.local import connect_org


def main() -> int:
    settings = Settings.from_env()
    fabric = settings.fabric
    now = datetime.now(UTC).isoformat(timespec="seconds")
    document = json.dumps({"hello": "TraceHub", "at": now}, sort_keys=True).encode()

    with content_store(settings) as ipfs:
        cid = ipfs.add(document)
        if ipfs.cat(cid) != document:
            print("demo: IPFS returned different bytes for", cid, file=sys.stderr)
            return 1
    print(f"IPFS    stored {len(document)} bytes   CID {cid}")

    record_id = f"demo-{int(time.time() * 1000)}"
    value = json.dumps({"document_cid": cid, "at": now})
    try:
        with connect_org(fabric, 1) as org1:
            contract = org1.get_network(fabric.channel).get_contract(fabric.chaincode)
            started = time.perf_counter()
            committed = contract.submit("PutRecord", record_id, value)
            elapsed = time.perf_counter() - started
        with connect_org(fabric, 2) as org2:
            contract = org2.get_network(fabric.channel).get_contract(fabric.chaincode)
            read_back = json.loads(contract.evaluate("GetRecord", record_id))
    except LedgerError as exc:
        print(f"demo: ledger: {exc}", file=sys.stderr)
        return 1
    print(f"Fabric  Org1 wrote record {record_id} on channel {fabric.channel}")
    print(f"        tx {committed.tx_id}")
    print(f"        block {committed.block_number}, {committed.status}, {elapsed * 1000:.0f} ms")
    print(f"        Org2 read it back: value {read_back['value']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
