#!/usr/bin/env bash
# Fail the PostgreSQL pair over (TRACEHUB_TOPOLOGY=ha, decision 0033):
#   failover.sh promote [NEW OLD]  fence OLD (default postgres), promote NEW (default postgres-standby)
#   failover.sh rejoin [OLD]       set a fenced node's data aside, so standby.sh copies the new
#                                  primary afresh (then start it with standby.sh, as promote says)
#   failover.sh sync PORT          make the primary on PORT wait for its standby again, once one
#                                  streams from it (synchronous_commit=remote_apply)
# Nodes are directories of the run dir: postgres (postgres.sh) and postgres-standby (standby.sh).
# Fencing comes first: the old primary is killed if it still runs, and marked so that neither
# script starts it again and, started by hand, it comes up read-only (standby.signal). Clients
# follow by themselves: their multi-host connection string (TRACEHUB_POSTGRES_STANDBYS) skips
# servers that are down or read-only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
run=${TRACEHUB_RUN:-$project/.run}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_owner=()
[[ $(id -u) == 0 ]] && as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)

fence() {  # fence NODE: the node never serves as a primary again until rejoined
  local home=$run/$1 pid
  pid=$(head -1 "$home/data/postmaster.pid" 2>/dev/null) || pid=
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    echo "failover: killing the old primary $1 (pid $pid)"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  echo "fenced by failover.sh at $(date -u +%FT%TZ)" >"$home/FENCED"
  if [[ -d $home/data ]]; then
    "${as_owner[@]}" touch "$home/data/standby.signal"
  fi
}

promote() {
  local new=${1:-postgres-standby} old=${2:-postgres} started=$SECONDS
  [[ -f $run/$new/data/standby.signal ]] || { echo "failover: $new is not a standby" >&2; exit 1; }
  fence "$old"
  # -w: return once the server accepts writes.
  "${as_owner[@]}" "$pgbin/pg_ctl" promote -w -t 60 -D "$run/$new/data" >/dev/null
  # No synchronous standby from here (standby.sh sets none; this clears one a copy may have
  # brought along): a lone primary that waited for a standby would stop every commit.
  local port
  port=$(sed -n 4p "$run/$new/data/postmaster.pid")
  PGPASSFILE=$run/postgres-secrets/pgpass psql -h 127.0.0.1 -p "$port" -U tracehub -d postgres -tAq \
    -c "alter system reset synchronous_standby_names" -c "select pg_reload_conf()" >/dev/null
  echo "failover: $new promoted in $((SECONDS - started)) s; $old fenced."
  echo "  It commits alone until a standby rejoins: failover.sh rejoin $old, then start $old"
  echo "  with TRACEHUB_POSTGRES_NODE=$old PGPORT=<its port> TRACEHUB_POSTGRES_PRIMARY_PORT=<$new's>"
  echo "  network/postgres/standby.sh, then failover.sh sync <$new's port>."
}

rejoin() {
  local old=${1:-postgres} home
  home=$run/$old
  [[ -f $home/FENCED ]] || { echo "failover: $old is not fenced" >&2; exit 1; }
  # A fresh copy rather than pg_rewind: simplest and certainly consistent. The old data is kept
  # for inspection (it may hold commits no client was told of); delete it when done.
  if [[ -d $home/data ]]; then
    mv "$home/data" "$home/data.fenced-$(date -u +%Y%m%dT%H%M%S)"
  fi
  rm -f "$home/FENCED"
  echo "failover: $old unfenced; its data was set aside. standby.sh copies the primary at its next start."
}

wait_for_standby() {  # PORT: once a standby streams from the primary there, commits wait for it
  local port=$1 deadline=$((SECONDS + 60))
  local psql=(psql -h 127.0.0.1 -p "$port" -U tracehub -d postgres -tAq)
  export PGPASSFILE=$run/postgres-secrets/pgpass
  until_replication() {  # CONDITION MESSAGE: poll pg_stat_replication until a row meets it
    until [[ -n $("${psql[@]}" -c "select 1 from pg_stat_replication where $1") ]]; do
      ((SECONDS < deadline)) || { echo "failover: $2" >&2; exit 1; }
      sleep 0.2
    done
  }
  until_replication "state = 'streaming'" "no standby streams from :$port"
  "${psql[@]}" -c "alter system set synchronous_standby_names = 'FIRST 1 (\"postgres-standby\", postgres)'" \
    -c "alter system set synchronous_commit = remote_apply" -c "select pg_reload_conf()" >/dev/null
  # pg_reload_conf() only signals the server: the walsender takes the new setting a moment later.
  # Return once it has, so a commit made after this script is waited for.
  until_replication "sync_state = 'sync'" "the standby on :$port never became synchronous"
  echo "failover: the primary on :$port waits for its standby again"
}

case ${1:-} in
  promote) promote "${2:-}" "${3:-}" ;;
  rejoin) rejoin "${2:-}" ;;
  sync) [[ -n ${2:-} ]] || { echo "usage: failover.sh sync PORT" >&2; exit 2; }; wait_for_standby "$2" ;;
  *) echo "usage: failover.sh promote [NEW OLD] | rejoin [OLD] | sync PORT" >&2; exit 2 ;;
esac
