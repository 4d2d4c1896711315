#!/usr/bin/env bash
# Run Kubo (IPFS) node N (default 1) in the foreground with a private, loopback-only repo under
# the run dir: no public bootstrap peers, no DHT or delegated routing, no mDNS, no relay; RPC API
# on loopback.   kubo.sh [N]
# Node 1 is the everyday node ($TRACEHUB_RUN/ipfs, ports 15001 RPC, 18080 gateway, 14001 swarm).
# TRACEHUB_TOPOLOGY=ha runs two (docs/deployment.md): node N lives in $TRACEHUB_RUN/ipfsN, its
# ports N-1 above node 1's, both share a swarm key generated here (a private network: only nodes
# holding the key connect) and each keeps a connection to the other (Peering.Peers).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
run=${TRACEHUB_RUN:-$project/.run}
export PATH="${TRACEHUB_BIN:-$project/.bin}:$PATH"
NODE=${1:-1}
TOPOLOGY=${TRACEHUB_TOPOLOGY:-single}
NODES=1
[[ $TOPOLOGY == ha ]] && NODES=2
((NODE >= 1 && NODE <= NODES)) || { echo "kubo: node $NODE: the $TOPOLOGY topology has $NODES" >&2; exit 2; }

repo() { if (($1 == 1)); then echo "$run/ipfs"; else echo "$run/ipfs$1"; fi; }
api_port() { echo $((${KUBO_API_PORT:-15001} + $1 - 1)); }
gateway_port() { echo $((${KUBO_GATEWAY_PORT:-18080} + $1 - 1)); }
swarm_port() { echo $((${KUBO_SWARM_PORT:-14001} + $1 - 1)); }
peer_id() { sed -n 's/^ *"PeerID": "\(.*\)".*/\1/p' "$(repo "$1")/config"; }

init_repo() {  # init_repo N: a fresh repo for node N, configured as above (once)
  local n=$1
  export IPFS_PATH
  IPFS_PATH=$(repo "$n")
  [[ -f $IPFS_PATH/config ]] && return
  echo "kubo: initialising repo $IPFS_PATH"
  ipfs init --empty-repo >/dev/null
  set_json() { ipfs config --json "$1" "$2"; }
  ipfs config Addresses.API "/ip4/127.0.0.1/tcp/$(api_port "$n")"
  ipfs config Addresses.Gateway "/ip4/127.0.0.1/tcp/$(gateway_port "$n")"
  set_json Addresses.Swarm "[\"/ip4/127.0.0.1/tcp/$(swarm_port "$n")\"]"
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
}

if ((NODES > 1)); then
  # Every node's repo first: each node's peering entry names the others' peer ids.
  for ((n = 1; n <= NODES; n++)); do init_repo "$n"; done
  key=$run/ipfs-swarm.key
  if [[ ! -f $key ]]; then
    (umask 077 && printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' \
      "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$key")
  fi
  peers=""
  for ((n = 1; n <= NODES; n++)); do
    ((n == NODE)) && continue
    peers+="${peers:+,}{\"ID\":\"$(peer_id "$n")\",\"Addrs\":[\"/ip4/127.0.0.1/tcp/$(swarm_port "$n")\"]}"
  done
  export IPFS_PATH
  IPFS_PATH=$(repo "$NODE")
  install -m 600 "$key" "$IPFS_PATH/swarm.key"
  ipfs config --json Peering.Peers "[$peers]"
  # Refuse to start without the key rather than join a public network by mistake; libp2p
  # cannot share one TCP port between transports in a private network.
  export LIBP2P_FORCE_PNET=1 LIBP2P_TCP_MUX=false
else
  init_repo 1
fi
export IPFS_PATH
IPFS_PATH=$(repo "$NODE")
# A loopback-only node reports nothing to the internet (Kubo's telemetry is on by default).
export IPFS_TELEMETRY=off
exec ipfs daemon --migrate=false
