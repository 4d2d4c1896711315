#!/usr/bin/env bash
# Create channel `trace` on every orderer (channel participation API) and join every peer.
# Idempotent: a member that already has the channel is left alone.
set -euo pipefail
source "$(dirname "$0")/env.sh"
block=$FABRIC_HOME/$CHANNEL.block
admin_tls=$ORDERER_ADMIN/tls

for n in "${ORDERERS[@]}"; do
  name=$(orderer_name "$n")
  admin=(-o "127.0.0.1:$(orderer_admin_port "$n")" --ca-file "$ORDERER_CA"
    --client-cert "$admin_tls/client.crt" --client-key "$admin_tls/client.key")
  if osnadmin channel list "${admin[@]}" 2>/dev/null | grep -q "\"name\": \"$CHANNEL\""; then
    echo "fabric: $name already serves channel $CHANNEL"
  else
    echo "fabric: $name joins channel $CHANNEL"
    osnadmin channel join --channelID "$CHANNEL" --config-block "$block" "${admin[@]}" >/dev/null
  fi
done

for member in "${PEERS[@]}"; do
  read -r org index <<<"$member"
  as_org_admin "$org" "$index"
  if peer channel list 2>/dev/null | grep -qx "$CHANNEL"; then
    echo "fabric: peer$index.org$org already joined $CHANNEL"
  else
    echo "fabric: peer$index.org$org joins $CHANNEL"
    peer channel join -b "$block" 2>>"$FABRIC_HOME/channel.log"
  fi
done
