#!/usr/bin/env bash
# Run peer P (default 0; peer1 of Org1 in the HA topology) of org N (1 or 2) in the foreground:
# LevelDB state, TLS, Gateway service enabled, chaincode through the external "ccaas" builder
# (no Docker).
set -euo pipefail
source "$(dirname "$0")/env.sh"
org=${1:?usage: peer.sh 1|2 [0|1]}
index=${2:-0}

dir=$(peer_dir "$org" "$index")
name=peer$index.$(org_domain "$org")
data=$FABRIC_HOME/$name
mkdir -p "$data"
address=127.0.0.1:$(peer_port "$org" "$index")
# A second peer learns its org's members (and, through them, the channel) from peer0.
bootstrap=127.0.0.1:$(peer_port "$org" 0)
export CORE_PEER_ID=$name
export CORE_PEER_LOCALMSPID=Org${org}MSP
export CORE_PEER_MSPCONFIGPATH=$dir/msp
export CORE_PEER_ADDRESS=$address
export CORE_PEER_LISTENADDRESS=$address
export CORE_PEER_CHAINCODEADDRESS=127.0.0.1:$(peer_cc_port "$org" "$index")
export CORE_PEER_CHAINCODELISTENADDRESS=127.0.0.1:$(peer_cc_port "$org" "$index")
export CORE_PEER_GOSSIP_BOOTSTRAP=$bootstrap
export CORE_PEER_GOSSIP_EXTERNALENDPOINT=$address
# On a fresh network the first dial to the other org's anchor peer can precede that peer's own
# channel join; retry it every 2 s instead of sampleconfig's 25 s, so endorsement by both orgs
# is possible seconds after start-up rather than half a minute.
export CORE_PEER_GOSSIP_RECONNECTINTERVAL=2s
export CORE_PEER_TLS_ENABLED=true
export CORE_PEER_TLS_CERT_FILE=$dir/tls/server.crt
export CORE_PEER_TLS_KEY_FILE=$dir/tls/server.key
export CORE_PEER_TLS_ROOTCERT_FILE=$dir/tls/ca.crt
export CORE_PEER_FILESYSTEMPATH=$data/production
export CORE_LEDGER_STATE_STATEDATABASE=goleveldb
export CORE_LEDGER_SNAPSHOTS_ROOTDIR=$data/snapshots
export CORE_PEER_GATEWAY_ENABLED=true
export CORE_OPERATIONS_LISTENADDRESS=127.0.0.1:$(peer_ops_port "$org" "$index")
export CORE_METRICS_PROVIDER=prometheus
# No Docker here: chaincode runs as a service we start, found through the ccaas builder.
export CORE_VM_ENDPOINT=
export CORE_CHAINCODE_EXTERNALBUILDERS="[{name: ccaas, path: $fabric_dir/ccaas}]"
exec peer node start
