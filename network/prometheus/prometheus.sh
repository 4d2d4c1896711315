#!/usr/bin/env bash
# Run the stack's Prometheus in the foreground, loopback only, its configuration written into the
# run dir on each start from the stack's ports (network/fabric/env.sh for the Fabric topology).
# It scrapes the API's metrics port, the Fabric orderers' and peers' operations endpoints, Kubo's
# RPC port, and every process registered in $TRACEHUB_RUN/prometheus/targets/*.json (gateways and
# workers on free ports, tracehub/metrics.py). Alert rules: network/prometheus/rules/*.yml, plus
# any file in $PROMETHEUS_HOME/rules/ (re-read on POST /-/reload). Decision 0032.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../fabric/env.sh"
export PATH="$TRACEHUB_BIN:$PATH"
home=${PROMETHEUS_HOME:-$TRACEHUB_RUN/prometheus}
port=${TRACEHUB_PROMETHEUS_PORT:-19090}
api_metrics_port=${TRACEHUB_API_METRICS_PORT:-18001}
kubo_api_port=${KUBO_API_PORT:-15001}
targets_dir=$TRACEHUB_RUN/prometheus/targets
mkdir -p "$home/data" "$home/rules" "$targets_dir"

list() { local out="" t; for t in "$@"; do out+="${out:+, }'127.0.0.1:$t'"; done; echo "[$out]"; }
orderer_targets=() peer_targets=()
for n in "${ORDERERS[@]}"; do orderer_targets+=("$(orderer_ops_port "$n")"); done
for p in "${PEERS[@]}"; do peer_targets+=("$(peer_ops_port $p)"); done
kubo_targets=("$kubo_api_port")
[[ $TOPOLOGY == ha ]] && kubo_targets+=("$((kubo_api_port + 1))")  # kubo2 (network/kubo/kubo.sh 2)

cat >"$home/prometheus.yml" <<YAML
# Written by network/prometheus/prometheus.sh on each start; edit that script, not this file.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - '$here/rules/*.yml'
  - '$home/rules/*.yml'
scrape_configs:
  - job_name: api
    static_configs: [{targets: $(list "$api_metrics_port")}]
  - job_name: fabric-orderer
    static_configs: [{targets: $(list "${orderer_targets[@]}")}]
  - job_name: fabric-peer
    static_configs: [{targets: $(list "${peer_targets[@]}")}]
  - job_name: kubo
    metrics_path: /debug/metrics/prometheus
    static_configs: [{targets: $(list "${kubo_targets[@]}")}]
  # Gateways, commerce workers, edge agents: each registers its port in a file of its own
  # (labels job and process) and removes it when it stops.
  - job_name: processes
    file_sd_configs:
      - files: ['$targets_dir/*.json']
        refresh_interval: 5s
YAML

exec prometheus \
  --config.file="$home/prometheus.yml" \
  --storage.tsdb.path="$home/data" \
  --storage.tsdb.retention.time=7d \
  --web.listen-address="127.0.0.1:$port" \
  --web.enable-lifecycle
