#!/usr/bin/env bash
# Build the Go-built components with `go install` into $TRACEHUB_BIN (default: .bin/).
#
# Versions are pinned by the build-only Go modules network/fabric/go.mod (Hyperledger Fabric),
# network/kubo/go.mod (Kubo), network/stripe-mock/go.mod (Stripe's API mock server) and
# network/prometheus/go.mod (the Prometheus server and promtool), whose go.sum files pin every
# dependency by checksum.
# A binary already built at the pinned version is skipped. Go's build cache makes a rebuild after
# a fresh clone a link step rather than a full compile. Why not `go install pkg@version`:
# docs/decisions/0001-go-built-components.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${TRACEHUB_BIN:-$here/../.bin}
mkdir -p "$bin"
bin=$(cd "$bin" && pwd)

pinned() {  # pinned <module dir> <module path>: the version go.mod pins
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

build() {  # build <name> <module dir> <package> <pinned module> [ldflags] [build tags]
  local name=$1 dir=$2 pkg=$3 module=$4 ldflags=${5:-} tags=${6:-}
  local version stamp="$bin/.$name.version" start=$SECONDS
  version=$(pinned "$dir" "$module")
  if [[ -x "$bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
    echo "build: $name $version already built"
    return
  fi
  echo "build: $name <- $pkg@$version (a cold build compiles for minutes)"
  local log="$bin/.$name.build.log"
  # -v lists each package as it is compiled: count them as progress.
  ( cd "$here/$dir" && GOBIN="$bin" GOFLAGS="-mod=readonly -buildvcs=false" \
      go install -v -tags "$tags" -ldflags "$ldflags" "$pkg" ) >"$log" 2>&1 &
  local pid=$!
  local last_report=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - last_report >= 10)); then
      last_report=$SECONDS
      echo "build: $name ... $(wc -l <"$log") packages compiled, $((SECONDS - start)) s"
    fi
  done
  if ! wait "$pid"; then
    echo "build: $name FAILED, see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  echo "$version" >"$stamp"
  echo "build: $name $version done in $((SECONDS - start)) s"
}

fabric_meta="github.com/hyperledger/fabric/common/metadata"
fabric_ldflags="-X $fabric_meta.Version=3.1.0 -X $fabric_meta.CommitSHA=8f08391d840c"
# remove_all_sd leaves out Prometheus's cloud service discoveries (Kubernetes, AWS, Azure, ...),
# which the stack does not use, and with them most of a cold build; file and HTTP discovery stay.
prometheus_tags="remove_all_sd"
prometheus_meta="github.com/prometheus/common/version"
# The Go module v0.MNN.P is Prometheus M.NN.P (what `prometheus --version` should say).
prometheus_module=$(pinned prometheus github.com/prometheus/prometheus)
prometheus_version=${prometheus_module#v0.}
prometheus_version=${prometheus_version:0:1}.${prometheus_version:1}
for target in ${*:-peer orderer configtxgen osnadmin cryptogen ipfs stripe-mock prometheus promtool}; do
  case $target in
    ipfs)
      build ipfs kubo github.com/ipfs/kubo/cmd/ipfs github.com/ipfs/kubo ;;
    stripe-mock)  # Stripe's API mock server, for the commerce payment tests
      build stripe-mock stripe-mock github.com/stripe/stripe-mock github.com/stripe/stripe-mock ;;
    prometheus|promtool)  # the metrics server of the stack (network/prometheus/) and its checker
      build "$target" prometheus "github.com/prometheus/prometheus/cmd/$target" \
        github.com/prometheus/prometheus "-X $prometheus_meta.Version=$prometheus_version" \
        "$prometheus_tags" ;;
    peer|orderer|configtxgen|osnadmin|cryptogen)
      build "$target" fabric "github.com/hyperledger/fabric/cmd/$target" \
        github.com/hyperledger/fabric "$fabric_ldflags" ;;
    *) echo "build: unknown target $target" >&2; exit 2 ;;
  esac
done
