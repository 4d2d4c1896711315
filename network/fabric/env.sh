# Shared settings for the Fabric node scripts: sourced, never run.
# Ports are all on loopback; every directory lives under the run dir ($TRACEHUB_RUN).
fabric_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project_dir=$(cd "$fabric_dir/../.." && pwd)
export TRACEHUB_RUN=${TRACEHUB_RUN:-$project_dir/.run}
export TRACEHUB_BIN=${TRACEHUB_BIN:-$project_dir/.bin}
export PATH="$TRACEHUB_BIN:$PATH"
# Fabric nodes and the peer CLI log every gRPC connection at INFO; keep grpc at warnings.
export FABRIC_LOGGING_SPEC=${FABRIC_LOGGING_SPEC:-info:grpc=warning}

FABRIC_HOME=$TRACEHUB_RUN/fabric
CRYPTO=$FABRIC_HOME/crypto
export FABRIC_CFG_PATH=$FABRIC_HOME/config
CHANNEL=trace
CHAINCODE_NAME=tracehub
CHAINCODE_VERSION=1.0
CHAINCODE_SEQUENCE=1

# Topology: `single` (one orderer, peer0 of each org: the everyday stack) or `ha` (three Raft
# orderers and a second peer for Org1, docs/deployment.md).
TOPOLOGY=${TRACEHUB_TOPOLOGY:-single}
case $TOPOLOGY in single | ha) ;; *) echo "TRACEHUB_TOPOLOGY must be single or ha, not $TOPOLOGY" >&2; exit 2 ;; esac
# Added to every port of the stack (STACK_PORT_OFFSET; network/stack.sh) and to every Fabric
# port (PORT_OFFSET: TRACEHUB_FABRIC_PORT_OFFSET, else the stack's), so a second stack (e.g. the
# HA one under test) can run beside the everyday one on one machine. tracehub/config.py reads
# the same variables.
STACK_PORT_OFFSET=${TRACEHUB_PORT_OFFSET:-0}
PORT_OFFSET=${TRACEHUB_FABRIC_PORT_OFFSET:-$STACK_PORT_OFFSET}

# Orderer N (1..3): orderer.tracehub.local, orderer2..., orderer3...; ports 100 apart.
orderer_name() { if (($1 == 1)); then echo orderer; else echo "orderer$1"; fi; }
orderer_port() { echo $((17050 + 100 * ($1 - 1) + PORT_OFFSET)); }        # gRPC: broadcast, deliver, cluster
orderer_admin_port() { echo $((17053 + 100 * ($1 - 1) + PORT_OFFSET)); }  # channel participation API
orderer_ops_port() { echo $((17443 + 100 * ($1 - 1) + PORT_OFFSET)); }    # operations: /healthz, /metrics
orderer_dir() { echo "$CRYPTO/ordererOrganizations/tracehub.local/orderers/$(orderer_name "$1").tracehub.local"; }
# The topology's orderers, and its peers as "org index" pairs.
if [[ $TOPOLOGY == ha ]]; then
  ORDERERS=(1 2 3)
  PEERS=("1 0" "1 1" "2 0")
else
  ORDERERS=(1)
  PEERS=("1 0" "2 0")
fi

ORDERER_PORT=$(orderer_port 1)
ORDERER_ADMIN_PORT=$(orderer_admin_port 1)
ORDERER_OPS_PORT=$(orderer_ops_port 1)
ORDERER_DIR=$(orderer_dir 1)
ORDERER_CA=$CRYPTO/ordererOrganizations/tracehub.local/tlsca/tlsca.tracehub.local-cert.pem
ORDERER_ADMIN=$CRYPTO/ordererOrganizations/tracehub.local/users/Admin@tracehub.local

CHAINCODE_SERVER_PORT=$((17999 + PORT_OFFSET))

# Peer P (0 or 1) of org N (1 or 2); P defaults to 0. peer1.org1 sits 10 ports above peer0.org1.
peer_port() { echo $(( ($1 == 1 ? 17051 : 18051) + 10 * ${2:-0} + PORT_OFFSET )); }      # gRPC: peers, gateway clients
peer_cc_port() { echo $(( ($1 == 1 ? 17052 : 18052) + 10 * ${2:-0} + PORT_OFFSET )); }   # chaincode listener
peer_ops_port() { echo $(( ($1 == 1 ? 17446 : 18446) + 10 * ${2:-0} + PORT_OFFSET )); }  # operations: /healthz, /metrics
org_domain() { echo "org$1.tracehub.local"; }
peer_dir() { echo "$CRYPTO/peerOrganizations/$(org_domain "$1")/peers/peer${2:-0}.$(org_domain "$1")"; }
org_tls_ca() { echo "$CRYPTO/peerOrganizations/$(org_domain "$1")/tlsca/tlsca.$(org_domain "$1")-cert.pem"; }

# as_org_admin N [P]: point the `peer` CLI at peer P (default 0) of org N, as org N's admin.
as_org_admin() {
  local org=$1 domain
  domain=$(org_domain "$org")
  export CORE_PEER_LOCALMSPID="Org${org}MSP"
  export CORE_PEER_MSPCONFIGPATH=$CRYPTO/peerOrganizations/$domain/users/Admin@$domain/msp
  export CORE_PEER_ADDRESS=127.0.0.1:$(peer_port "$org" "${2:-0}")
  export CORE_PEER_TLS_ENABLED=true
  export CORE_PEER_TLS_ROOTCERT_FILE
  CORE_PEER_TLS_ROOTCERT_FILE=$(org_tls_ca "$org")
}
ORDERER_ARGS=(-o "127.0.0.1:$ORDERER_PORT" --tls --cafile "$ORDERER_CA")
