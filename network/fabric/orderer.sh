#!/usr/bin/env bash
# Run Raft orderer N (default 1; 2 and 3 in the HA topology) in the foreground: channel
# participation API, no system channel, TLS. Raft traffic between orderers shares the gRPC port,
# authenticated by each orderer's own TLS certificate (the consenters in configtx.yaml).
set -euo pipefail
source "$(dirname "$0")/env.sh"
n=${1:-1}

data=$FABRIC_HOME/$(orderer_name "$n")
mkdir -p "$data"
dir=$(orderer_dir "$n")
tls=$dir/tls
export ORDERER_GENERAL_LISTENADDRESS=127.0.0.1
export ORDERER_GENERAL_LISTENPORT=$(orderer_port "$n")
export ORDERER_GENERAL_LOCALMSPID=OrdererMSP
export ORDERER_GENERAL_LOCALMSPDIR=$dir/msp
export ORDERER_GENERAL_TLS_ENABLED=true
export ORDERER_GENERAL_TLS_PRIVATEKEY=$tls/server.key
export ORDERER_GENERAL_TLS_CERTIFICATE=$tls/server.crt
export ORDERER_GENERAL_TLS_ROOTCAS=[$tls/ca.crt]
export ORDERER_GENERAL_BOOTSTRAPMETHOD=none
export ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE=$tls/server.crt
export ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY=$tls/server.key
export ORDERER_GENERAL_CLUSTER_ROOTCAS=[$tls/ca.crt]
export ORDERER_CHANNELPARTICIPATION_ENABLED=true
export ORDERER_ADMIN_LISTENADDRESS=127.0.0.1:$(orderer_admin_port "$n")
export ORDERER_ADMIN_TLS_ENABLED=true
export ORDERER_ADMIN_TLS_PRIVATEKEY=$tls/server.key
export ORDERER_ADMIN_TLS_CERTIFICATE=$tls/server.crt
export ORDERER_ADMIN_TLS_ROOTCAS=[$tls/ca.crt]
export ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true
export ORDERER_ADMIN_TLS_CLIENTROOTCAS=[$tls/ca.crt]
export ORDERER_FILELEDGER_LOCATION=$data/ledger
export ORDERER_CONSENSUS_WALDIR=$data/etcdraft/wal
export ORDERER_CONSENSUS_SNAPDIR=$data/etcdraft/snapshot
export ORDERER_OPERATIONS_LISTENADDRESS=127.0.0.1:$(orderer_ops_port "$n")
export ORDERER_METRICS_PROVIDER=prometheus
exec orderer
