#!/usr/bin/env bash
# Chaincode lifecycle for the TraceHub chaincode as a service.
#   chaincode.sh package  -> build the ccaas package, print its package id
#   chaincode.sh deploy   -> install on every peer, approve for both orgs, commit (idempotent)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cc_home=$FABRIC_HOME/chaincode
pkg=$cc_home/$CHAINCODE_NAME.tar.gz
label=${CHAINCODE_NAME}_$CHAINCODE_VERSION

package() {
  mkdir -p "$cc_home/src"
  # The peer dials the chaincode server over TLS and checks its certificate against Org1's TLS CA.
  python3 - "$cc_home/src/connection.json" "$(org_tls_ca 1)" "$CHAINCODE_SERVER_PORT" <<'PY'
import json, sys
out, ca, port = sys.argv[1:]
json.dump({"address": f"127.0.0.1:{port}", "dial_timeout": "10s", "tls_required": True,
           "client_auth_required": False, "root_cert": open(ca).read()}, open(out, "w"), indent=2)
PY
  printf '{"type":"ccaas","label":"%s"}\n' "$label" >"$cc_home/src/metadata.json"
  # Deterministic tarballs: the same inputs give the same package id on every run.
  local tar_opts=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner)
  tar "${tar_opts[@]}" -C "$cc_home/src" -cf - connection.json | gzip -n >"$cc_home/code.tar.gz"
  tar "${tar_opts[@]}" -C "$cc_home" -cf - code.tar.gz -C src metadata.json | gzip -n >"$pkg"
  peer lifecycle chaincode calculatepackageid "$pkg" >"$cc_home/package_id"
  cat "$cc_home/package_id"
}

deploy() {
  [[ -f $pkg ]] || package >/dev/null
  local package_id
  package_id=$(cat "$cc_home/package_id")
  local member org index
  for member in "${PEERS[@]}"; do
    read -r org index <<<"$member"
    as_org_admin "$org" "$index"
    if peer lifecycle chaincode queryinstalled 2>/dev/null | grep -q "$package_id"; then
      echo "fabric: chaincode already installed on peer$index.org$org"
    else
      echo "fabric: installing chaincode on peer$index.org$org"
      peer lifecycle chaincode install "$pkg" 2>>"$FABRIC_HOME/chaincode.log"
    fi
  done
  as_org_admin 1
  if peer lifecycle chaincode querycommitted -C "$CHANNEL" -n "$CHAINCODE_NAME" >/dev/null 2>&1; then
    echo "fabric: chaincode $CHAINCODE_NAME already committed on $CHANNEL"
    return
  fi
  local definition=(-C "$CHANNEL" -n "$CHAINCODE_NAME" -v "$CHAINCODE_VERSION" --sequence "$CHAINCODE_SEQUENCE")
  for org in 1 2; do
    as_org_admin "$org"
    if peer lifecycle chaincode checkcommitreadiness "${definition[@]}" 2>/dev/null | grep -q "Org${org}MSP: true"; then
      echo "fabric: Org${org} already approved"
    else
      echo "fabric: Org${org} approves the chaincode definition"
      peer lifecycle chaincode approveformyorg "${ORDERER_ARGS[@]}" "${definition[@]}" \
        --package-id "$package_id" --waitForEvent 2>>"$FABRIC_HOME/chaincode.log"
    fi
  done
  echo "fabric: committing the chaincode definition"
  as_org_admin 1
  peer lifecycle chaincode commit "${ORDERER_ARGS[@]}" "${definition[@]}" \
    --peerAddresses "127.0.0.1:$(peer_port 1)" --tlsRootCertFiles "$(org_tls_ca 1)" \
    --peerAddresses "127.0.0.1:$(peer_port 2)" --tlsRootCertFiles "$(org_tls_ca 2)" \
    --waitForEvent 2>>"$FABRIC_HOME/chaincode.log"
}

case ${1:-} in
  package) package ;;
  deploy) deploy ;;
  *) echo "usage: chaincode.sh package|deploy" >&2; exit 2 ;;
esac
