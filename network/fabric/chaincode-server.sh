#!/usr/bin/env bash
# Run the TraceHub chaincode (Python) as a service in the foreground. The peers dial it over TLS
# at the address in the package's connection.json, with the certificate cryptogen made for it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
tls=$CRYPTO/peerOrganizations/org1.tracehub.local/peers/chaincode.org1.tracehub.local/tls
export CHAINCODE_ID
CHAINCODE_ID=$(cat "$FABRIC_HOME/chaincode/package_id")
export CHAINCODE_SERVER_ADDRESS=127.0.0.1:$CHAINCODE_SERVER_PORT
export CHAINCODE_TLS_KEY_FILE=$tls/server.key
export CHAINCODE_TLS_CERT_FILE=$tls/server.crt
cd "$project_dir"
exec "${PYTHON:-$project_dir/.venv/bin/python}" -m chaincode
