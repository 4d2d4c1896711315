#!/usr/bin/env bash
# Run a hot standby of the PostgreSQL primary (postgres.sh with TRACEHUB_TOPOLOGY=ha) in the
# foreground, on its own port (PGPORT, default 15433) and data dir ($TRACEHUB_RUN/<node>).
#
# First start: pg_basebackup copies the primary as tracehub_replication, creating a physical
# replication slot named after the node; then standby.signal, primary_conninfo and the slot's name
# make the copy a standby that streams from the primary.
# The server reads the replication password from a password file of its own (0600, outside the
# data dir, never in git), copied from the run dir's secrets, which postgres.sh generated.
# The primary waits for this server to apply every commit (synchronous_standby_names names it by
# its application_name, the node name); failover.sh promotes it, and a fenced old primary comes
# back through this script too (TRACEHUB_POSTGRES_NODE=postgres, its port, the new primary's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
run=${TRACEHUB_RUN:-$project/.run}
node=${TRACEHUB_POSTGRES_NODE:-postgres-standby}
home=$run/$node
PORT=${PGPORT:-15433}
PRIMARY_PORT=${TRACEHUB_POSTGRES_PRIMARY_PORT:-15432}
slot=${node//-/_}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $pgbin/postgres ]] || { echo "standby: PostgreSQL server not installed (make deps)" >&2; exit 1; }
secrets=$run/postgres-secrets
[[ -s $secrets/tracehub_replication ]] || {
  echo "standby: no replication password in $secrets: start the primary with TRACEHUB_TOPOLOGY=ha" >&2
  exit 1
}
if [[ -f $home/FENCED ]]; then
  echo "standby: $home is fenced; set its data aside first: network/postgres/failover.sh rejoin $node" >&2
  exit 1
fi

as_owner=()
mkdir -p "$home"
if [[ $(id -u) == 0 ]]; then
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  chown postgres:postgres "$home"
fi
passfile=$home/replication.pgpass
(
  umask 077
  echo "127.0.0.1:*:*:tracehub_replication:$(cat "$secrets/tracehub_replication")" >"$passfile.new"
  [[ ${#as_owner[@]} -gt 0 ]] && chown postgres:postgres "$passfile.new"
  mv "$passfile.new" "$passfile"
)

if [[ ! -f $home/data/PG_VERSION ]]; then
  rm -rf "$home/data"
  # A slot an earlier copy of this node left would keep WAL for nobody, and blocks -C.
  PGPASSFILE=$secrets/pgpass psql -h 127.0.0.1 -p "$PRIMARY_PORT" -U tracehub -d postgres -tAq \
    -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '$slot'" >/dev/null
  echo "standby: pg_basebackup from 127.0.0.1:$PRIMARY_PORT into $home/data (slot $slot)"
  # Not under the node's name: the primary would take the copy's WAL stream for its synchronous
  # standby, and wait for it to apply commits, which it never does.
  conninfo="host=127.0.0.1 port=$PRIMARY_PORT user=tracehub_replication passfile=$passfile"
  "${as_owner[@]}" "$pgbin/pg_basebackup" -D "$home/data" --checkpoint=fast -X stream \
    --create-slot --slot="$slot" -d "$conninfo application_name=$node-copy"
  "${as_owner[@]}" touch "$home/data/standby.signal"
  # The name the primary's synchronous_standby_names waits for.
  printf "primary_conninfo = '%s'\nprimary_slot_name = '%s'\n" "$conninfo application_name=$node" "$slot" \
    | "${as_owner[@]}" tee -a "$home/data/postgresql.auto.conf" >/dev/null
fi

# hot_standby_feedback: queries on the standby (API reads) keep the rows they read from being
# vacuumed away under them on the primary, rather than being cancelled.
exec "${as_owner[@]}" "$pgbin/postgres" -D "$home/data" -p "$PORT" \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories="$home" \
  -c fsync=on -c shared_buffers=256MB -c max_connections=200 \
  -c hot_standby=on -c hot_standby_feedback=on -c wal_log_hints=on
