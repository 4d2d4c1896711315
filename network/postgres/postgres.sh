#!/usr/bin/env bash
# Run PostgreSQL (Debian's packages) in the foreground on a project-local data dir and port.
# initdb on first start. PostgreSQL refuses to run as root, so as root it runs as `postgres`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
run=${TRACEHUB_RUN:-$project/.run}
home=$run/postgres
PORT=${PGPORT:-15432}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $pgbin/postgres ]] || { echo "postgres: PostgreSQL server not installed (make deps)" >&2; exit 1; }

as_owner=()
if [[ $(id -u) == 0 ]]; then
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  mkdir -p "$home"
  chown postgres:postgres "$home"
fi
mkdir -p "$home"
if [[ ! -f $home/data/PG_VERSION ]]; then
  echo "postgres: initdb $home/data"
  "${as_owner[@]}" "$pgbin/initdb" -D "$home/data" -U tracehub --auth=trust -E UTF8 --locale=C.UTF-8 >"$home/initdb.log"
fi
# Loopback TCP plus a Unix socket in the run dir; trust auth is for this local dev/test stack only.
exec "${as_owner[@]}" "$pgbin/postgres" -D "$home/data" -p "$PORT" \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories="$home" \
  -c fsync=on -c shared_buffers=256MB -c max_connections=200
