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

ORDERER_PORT=17050
ORDERER_ADMIN_PORT=17053
ORDERER_OPS_PORT=17443
ORDERER_DIR=$CRYPTO/ordererOrganizations/tracehub.local/orderers/orderer.tracehub.local
ORDERER_CA=$CRYPTO/ordererOrganizations/tracehub.local/tlsca/tlsca.tracehub.local-cert.pem
ORDERER_ADMIN=$CRYPTO/ordererOrganizations/tracehub.local/users/Admin@tracehub.local

CHAINCODE_SERVER_PORT=17999

peer_port() { echo $(( $1 == 1 ? 17051 : 18051 )); }      # gRPC: peers, gateway clients
peer_cc_port() { echo $(( $1 == 1 ? 17052 : 18052 )); }   # chaincode listener
peer_ops_port() { echo $(( $1 == 1 ? 17446 : 18446 )); }  # operations: /healthz, /metrics
org_domain() { echo "org$1.tracehub.local"; }
peer_dir() { echo "$CRYPTO/peerOrganizations/$(org_domain "$1")/peers/peer0.$(org_domain "$1")"; }
org_tls_ca() { echo "$CRYPTO/peerOrganizations/$(org_domain "$1")/tlsca/tlsca.$(org_domain "$1")-cert.pem"; }

# as_org_admin N: point the `peer` CLI at org N's peer, as org N's admin.
as_org_admin() {
  local org=$1 domain
  domain=$(org_domain "$org")
  export CORE_PEER_LOCALMSPID="Org${org}MSP"
  export CORE_PEER_MSPCONFIGPATH=$CRYPTO/peerOrganizations/$domain/users/Admin@$domain/msp
  export CORE_PEER_ADDRESS=127.0.0.1:$(peer_port "$org")
  export CORE_PEER_TLS_ENABLED=true
  export CORE_PEER_TLS_ROOTCERT_FILE
  CORE_PEER_TLS_ROOTCERT_FILE=$(org_tls_ca "$org")
}
ORDERER_ARGS=(-o "127.0.0.1:$ORDERER_PORT" --tls --cafile "$ORDERER_CA")
