#!/usr/bin/env bash
# Run Kubo (IPFS) in the foreground with a private, loopback-only repo under the run dir:
# no public bootstrap peers, no DHT or delegated routing, no mDNS, no relay; RPC API on loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
run=${TRACEHUB_RUN:-$project/.run}
export PATH="${TRACEHUB_BIN:-$project/.bin}:$PATH"
export IPFS_PATH=$run/ipfs
API_PORT=${KUBO_API_PORT:-15001}
GATEWAY_PORT=${KUBO_GATEWAY_PORT:-18080}
SWARM_PORT=${KUBO_SWARM_PORT:-14001}

if [[ ! -f $IPFS_PATH/config ]]; then
  echo "kubo: initialising repo $IPFS_PATH"
  ipfs init --empty-repo >/dev/null
  set_json() { ipfs config --json "$1" "$2"; }
  ipfs config Addresses.API "/ip4/127.0.0.1/tcp/$API_PORT"
  ipfs config Addresses.Gateway "/ip4/127.0.0.1/tcp/$GATEWAY_PORT"
  set_json Addresses.Swarm "[\"/ip4/127.0.0.1/tcp/$SWARM_PORT\"]"
  set_json Bootstrap '[]'
  # AutoConf would fetch public bootstrap and router lists from the internet.
  set_json AutoConf.Enabled false
  ipfs config Routing.Type none
  set_json Routing.DelegatedRouters '[]'
  set_json Ipns.DelegatedPublishers '[]'
  set_json DNS.Resolvers '{}'
  set_json Discovery.MDNS.Enabled false
  set_json AutoTLS.Enabled false
  ipfs config AutoNAT.ServiceMode disabled
  set_json Swarm.RelayClient.Enabled false
  set_json Swarm.RelayService.Enabled false
  set_json Swarm.Transports.Network.Relay false
fi
exec ipfs daemon --migrate=false
