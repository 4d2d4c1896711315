#!/usr/bin/env bash
# Create channel `trace` on the orderer (channel participation API) and join both peers.
# Idempotent: a member that already has the channel is left alone.
set -euo pipefail
source "$(dirname "$0")/env.sh"
block=$FABRIC_HOME/$CHANNEL.block
admin_tls=$ORDERER_ADMIN/tls

if osnadmin channel list -o "127.0.0.1:$ORDERER_ADMIN_PORT" --ca-file "$ORDERER_CA" \
     --client-cert "$admin_tls/client.crt" --client-key "$admin_tls/client.key" 2>/dev/null \
   | grep -q "\"name\": \"$CHANNEL\""; then
  echo "fabric: orderer already serves channel $CHANNEL"
else
  echo "fabric: orderer joins channel $CHANNEL"
  osnadmin channel join --channelID "$CHANNEL" --config-block "$block" \
    -o "127.0.0.1:$ORDERER_ADMIN_PORT" --ca-file "$ORDERER_CA" \
    --client-cert "$admin_tls/client.crt" --client-key "$admin_tls/client.key" >/dev/null
fi

for org in 1 2; do
  as_org_admin "$org"
  if peer channel list 2>/dev/null | grep -qx "$CHANNEL"; then
    echo "fabric: peer0.org$org already joined $CHANNEL"
  else
    echo "fabric: peer0.org$org joins $CHANNEL"
    peer channel join -b "$block" 2>>"$FABRIC_HOME/channel.log"
  fi
done
