#!/usr/bin/env bash
# Build Telegraf, for the side-by-side ingest benchmark only (`make bench-telegraf`), into
# $TRACEHUB_BIN (default: .bin/). Not part of `make binaries`: the stack does not need it.
#
# Pinned by version: `go install <package>@<version>` builds with Telegraf's own go.mod and
# go.sum, whose checksums the Go checksum database vouches for. Only the plugins the benchmark
# uses are compiled in (Telegraf's `custom` build tag): the full binary is over 2,000 packages,
# and its build did not finish within 20 minutes on a shared two-core machine. A binary already
# built at the pinned version, plugins and flags is skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TRACEHUB_BIN:-$here/../.bin}
mkdir -p "$bin"
bin=$(cd "$bin" && pwd)

version=v1.37.2
tags=custom,inputs.mqtt_consumer,outputs.postgresql,parsers.value
ldflags="-X github.com/influxdata/telegraf/internal.Version=${version#v}"
stamp="$bin/.telegraf.version"
if [[ -x "$bin/telegraf" && -f "$stamp" && "$(cat "$stamp")" == "$version $tags $ldflags" ]]; then
  echo "build: telegraf $version already built"
  exit 0
fi
echo "build: telegraf <- github.com/influxdata/telegraf/cmd/telegraf@$version ($tags)"
start=$SECONDS
log="$bin/.telegraf.build.log"
if ! GOBIN="$bin" GOFLAGS="-buildvcs=false" \
    go install -tags "$tags" -ldflags "$ldflags" "github.com/influxdata/telegraf/cmd/telegraf@$version" >"$log" 2>&1; then
  echo "build: telegraf FAILED, see $log" >&2
  tail -20 "$log" >&2
  exit 1
fi
echo "$version $tags $ldflags" >"$stamp"
echo "build: telegraf $version done in $((SECONDS - start)) s"
