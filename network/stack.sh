#!/usr/bin/env bash
# Bring the local TraceHub stack up, down, or report on it:
#   stack.sh up | down | status | stop <component> | reload-broker
# Components run natively as background processes; each writes $TRACEHUB_RUN/logs/<name>.log and
# $TRACEHUB_RUN/pids/<name>.pid. `up` is idempotent: a healthy component is left running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/fabric/env.sh"
logs=$TRACEHUB_RUN/logs
pids=$TRACEHUB_RUN/pids
mkdir -p "$logs" "$pids"
PYTHON=${PYTHON:-$project_dir/.venv/bin/python}
PGPORT=15432
KUBO_API_PORT=15001
MQTT_TLS_PORT=18883
STRIPE_MOCK_PORT=12111
STRIPE_MOCK_HTTPS_PORT=12112
API_PORT=18000
WITNESS_PORT=18090

# name | command | health check | port(s) shown by status
components=(postgres kubo mosquitto orderer peer0.org1 peer0.org2 chaincode witness stripe-mock api)

command_of() {
  case $1 in
    postgres) echo "$here/postgres/postgres.sh" ;;
    kubo) echo "$here/kubo/kubo.sh" ;;
    mosquitto) echo "$here/mosquitto/mosquitto.sh" ;;
    orderer) echo "$here/fabric/orderer.sh" ;;
    peer0.org1) echo "$here/fabric/peer.sh 1" ;;
    peer0.org2) echo "$here/fabric/peer.sh 2" ;;
    chaincode) echo "$here/fabric/chaincode-server.sh" ;;
    # Org2's read-only view of anchors (tracehub/ledger/witness.py): the buyer page confirms each
    # anchor there too, not only with the hub.
    witness) echo "$PYTHON -m tracehub.ledger.witness --org 2 --port $WITNESS_PORT" ;;
    stripe-mock) echo "$here/stripe-mock/stripe-mock.sh" ;;
    api) echo "$PYTHON -m api --host 127.0.0.1 --port $API_PORT" ;;
  esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
fabric_healthy() { curl -fsS --max-time 3 "http://127.0.0.1:$1/healthz" 2>/dev/null | grep -q '"OK"'; }

healthy() {
  case $1 in
    postgres) pg_isready -q -t 3 -h 127.0.0.1 -p "$PGPORT" ;;
    kubo) curl -fsS --max-time 3 -X POST "http://127.0.0.1:$KUBO_API_PORT/api/v0/version" >/dev/null 2>&1 ;;
    mosquitto) port_open "$MQTT_TLS_PORT" ;;
    orderer) fabric_healthy "$ORDERER_OPS_PORT" ;;
    peer0.org1) fabric_healthy "$(peer_ops_port 1)" ;;
    peer0.org2) fabric_healthy "$(peer_ops_port 2)" ;;
    chaincode) port_open "$CHAINCODE_SERVER_PORT" ;;
    witness) curl -fsS --max-time 3 "http://127.0.0.1:$WITNESS_PORT/healthz" >/dev/null 2>&1 ;;
    # Any authenticated API call answers 200 once the mock has loaded its OpenAPI spec.
    stripe-mock) curl -fsS --max-time 3 -u sk_test_123: "http://127.0.0.1:$STRIPE_MOCK_PORT/v1/balance" >/dev/null 2>&1 ;;
    api) curl -fsS --max-time 3 "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 ;;
  esac
}

where() {
  case $1 in
    postgres) echo "postgresql://tracehub@127.0.0.1:$PGPORT/tracehub" ;;
    kubo) echo "RPC http://127.0.0.1:$KUBO_API_PORT  gateway http://127.0.0.1:18080" ;;
    mosquitto) echo "mqtts://127.0.0.1:$MQTT_TLS_PORT (client certificate required)" ;;
    orderer) echo "grpcs://127.0.0.1:$ORDERER_PORT  admin :$ORDERER_ADMIN_PORT  ops :$ORDERER_OPS_PORT" ;;
    peer0.org1) echo "grpcs://127.0.0.1:$(peer_port 1)  ops :$(peer_ops_port 1)" ;;
    peer0.org2) echo "grpcs://127.0.0.1:$(peer_port 2)  ops :$(peer_ops_port 2)" ;;
    chaincode) echo "grpcs://127.0.0.1:$CHAINCODE_SERVER_PORT (package $(cat "$FABRIC_HOME/chaincode/package_id" 2>/dev/null))" ;;
    witness) echo "http://127.0.0.1:$WITNESS_PORT (Org2's read-only anchor view)" ;;
    stripe-mock) echo "http://127.0.0.1:$STRIPE_MOCK_PORT  https://127.0.0.1:$STRIPE_MOCK_HTTPS_PORT (Stripe API mock)" ;;
    api) echo "http://127.0.0.1:$API_PORT (TraceHub API, QR pages, /docs)" ;;
  esac
}

pid_of() { local f=$pids/$1.pid; [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

start() {
  local name=$1 timeout=${2:-60} log=$logs/$1.log
  if pid_of "$name" >/dev/null && healthy "$name"; then
    echo "up: $name already running (pid $(pid_of "$name"))"
    return
  fi
  if healthy "$name"; then
    echo "up: FAILED: $name: its port is already served by a process this run dir did not start" >&2
    echo "    (another TraceHub checkout's stack? stop it with its own 'make down')" >&2
    exit 1
  fi
  echo "up: starting $name (log $log)"
  # setsid: the component outlives make and gets its own process group for `down`.
  # shellcheck disable=SC2046
  setsid $(command_of "$name") >>"$log" 2>&1 </dev/null &
  echo $! >"$pids/$name.pid"
  local deadline=$((SECONDS + timeout))
  until healthy "$name"; do
    if ! pid_of "$name" >/dev/null; then
      echo "up: FAILED: $name exited during start; last lines of $log:" >&2
      tail -n 15 "$log" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "up: FAILED: $name not healthy after ${timeout}s; last lines of $log:" >&2
      tail -n 15 "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

stop() {
  local name=$1 pid
  pid=$(pid_of "$name") || { rm -f "$pids/$name.pid"; return 0; }
  echo "down: stopping $name (pid $pid)"
  # Signal the whole process group (setsid made pid its leader); SIGINT is PostgreSQL's fast
  # shutdown and a clean stop for the others.
  local signal=TERM
  [[ $name == postgres ]] && signal=INT
  kill -"$signal" -- -"$pid" 2>/dev/null || kill -"$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "down: $name did not stop in 30 s; killing it" >&2
    kill -KILL -- -"$pid" 2>/dev/null || true
  fi
  rm -f "$pids/$name.pid"
}

# A restarted single-node Raft orderer needs a few election ticks before it orders anything,
# although its /healthz already says OK.
wait_for_raft_leader() {
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 3 "http://127.0.0.1:$ORDERER_OPS_PORT/metrics" 2>/dev/null \
      | grep -q "^consensus_etcdraft_is_leader{channel=\"$CHANNEL\"} 1"; do
    if ((SECONDS > deadline)); then
      echo "up: FAILED: orderer has no Raft leader for channel $CHANNEL after 60 s; see $logs/orderer.log" >&2
      exit 1
    fi
    sleep 0.5
  done
}

postgres_database() {
  local psql=(psql -h 127.0.0.1 -p "$PGPORT" -U tracehub -d postgres -tAq)
  if [[ -z $("${psql[@]}" -c "select 1 from pg_database where datname = 'tracehub'") ]]; then
    "${psql[@]}" -c "create database tracehub"
  fi
  if [[ -z $("${psql[@]}" -c "select 1 from pg_available_extensions where name = 'timescaledb'") ]]; then
    echo "up: note: TimescaleDB is not installed here; readings use native PostgreSQL partitioning"
  fi
}

up() {
  local started=$SECONDS
  bash "$here/fabric/crypto.sh"
  start postgres 60
  postgres_database
  (cd "$project_dir" && "$PYTHON" -m ingest migrate)
  start kubo 60
  (cd "$project_dir" && "$PYTHON" -m tracehub.cli certs init)
  start mosquitto 30
  start orderer 60
  start peer0.org1 90
  start peer0.org2 90
  bash "$here/fabric/channel.sh"
  wait_for_raft_leader
  [[ -f $FABRIC_HOME/chaincode/package_id ]] || bash "$here/fabric/chaincode.sh" package >/dev/null
  start chaincode 30
  bash "$here/fabric/chaincode.sh" deploy
  (cd "$project_dir" && "$PYTHON" -m tracehub.ledger.ready 120)
  # The chaincode enrols only certificates of the device CA it holds: record it (once).
  (cd "$project_dir" && "$PYTHON" -m tracehub.cli certs ledger-ca)
  start witness 30
  start stripe-mock 30
  # Last: the API serves what everything above provides (database, ledger, IPFS).
  start api 30
  echo "up: stack ready in $((SECONDS - started)) s"
  status
}

down() {
  local i
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do stop "${components[$i]}"; done
}

rss_mib() {  # resident memory of a component's whole process group, in MiB
  ps -e -o pgid=,rss= | awk -v g="$1" '$1 == g { kib += $2 } END { printf "%.0f", kib / 1024 }'
}

status() {
  local name pid state rss rc=0
  printf '%-11s %-8s %-8s %8s  %s\n' component pid state "RSS MiB" endpoint
  for name in "${components[@]}"; do
    pid=$(pid_of "$name") || pid=-
    if healthy "$name"; then state=healthy; elif [[ $pid != - ]]; then state=starting; rc=1; else state=down; rc=1; fi
    rss=-
    [[ $pid != - ]] && rss=$(rss_mib "$pid")
    printf '%-11s %-8s %-8s %8s  %s\n' "$name" "$pid" "$state" "$rss" "$(where "$name")"
  done
  echo "run dir: $TRACEHUB_RUN   logs: $logs"
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  reload-broker)
    # A restart, not SIGHUP: Mosquitto 2.0.11 (Debian) re-reading its CRL on SIGHUP left new TLS
    # handshakes failing ("unexpected eof") or crashed it ("double free") under the test suite,
    # a known family of reload-with-crlfile bugs upstream. A restart loads the new CRL for certain
    # and drops every connection, so a revoked device is cut off at once; sessions and queues
    # survive in the persistence file, and the end-to-end acknowledgement (docs/acknowledgement.md)
    # makes agents resend whatever a restart could lose.
    pid_of mosquitto >/dev/null || { echo "reload-broker: mosquitto is not running" >&2; exit 1; }
    stop mosquitto >/dev/null
    start mosquitto 30 >/dev/null
    echo "reload-broker: mosquitto restarted (pid $(pid_of mosquitto)) with the new CRL" ;;
  stop)
    [[ " ${components[*]} " == *" ${2:-} "* ]] || { echo "stop: one of: ${components[*]}" >&2; exit 2; }
    stop "$2" ;;
  *) echo "usage: stack.sh up|down|status|stop <component>|reload-broker" >&2; exit 2 ;;
esac
