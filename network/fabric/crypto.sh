#!/usr/bin/env bash
# Generate the network's identities (cryptogen) and the channel's genesis block (configtxgen),
# once: an existing run dir keeps its crypto so a restart finds its ledger and keys intact.
set -euo pipefail
source "$(dirname "$0")/env.sh"

mkdir -p "$FABRIC_CFG_PATH"
# Default node configuration (core.yaml, orderer.yaml) comes from Fabric's own sampleconfig at
# the pinned version; the node scripts override what TraceHub needs through environment variables.
sampleconfig=$(cd "$fabric_dir" && go list -m -f '{{.Dir}}' github.com/hyperledger/fabric)/sampleconfig
if [[ ! -f $FABRIC_CFG_PATH/core.yaml ]]; then
  [[ -d $sampleconfig ]] || (cd "$fabric_dir" && go mod download github.com/hyperledger/fabric)
  install -m 0644 "$sampleconfig/core.yaml" "$sampleconfig/orderer.yaml" "$FABRIC_CFG_PATH/"
fi
sed -e "s/{{ORDERER1_PORT}}/$(orderer_port 1)/g" -e "s/{{ORDERER2_PORT}}/$(orderer_port 2)/g" \
  -e "s/{{ORDERER3_PORT}}/$(orderer_port 3)/g" -e "s/{{ORG1_PEER_PORT}}/$(peer_port 1)/g" \
  -e "s/{{ORG2_PEER_PORT}}/$(peer_port 2)/g" "$fabric_dir/configtx.yaml" >"$FABRIC_CFG_PATH/configtx.yaml"
chmod 0644 "$FABRIC_CFG_PATH/configtx.yaml"

if [[ ! -d $CRYPTO ]]; then
  echo "fabric: generating crypto material (cryptogen)"
  cryptogen generate --config="$fabric_dir/crypto-config.yaml" --output="$CRYPTO.tmp" >/dev/null
  # Private keys readable by their owner only.
  find "$CRYPTO.tmp" -name '*_sk' -o -name 'server.key' -o -name 'client.key' | xargs chmod 0600
  mv "$CRYPTO.tmp" "$CRYPTO"
fi

if [[ ! -f $FABRIC_HOME/$CHANNEL.block ]]; then
  echo "fabric: generating genesis block of channel $CHANNEL (configtxgen)"
  profile=TraceChannel
  [[ $TOPOLOGY == ha ]] && profile=TraceChannelHA
  configtxgen -profile "$profile" -channelID "$CHANNEL" -outputBlock "$FABRIC_HOME/$CHANNEL.block.tmp" 2>"$FABRIC_HOME/configtxgen.log"
  mv "$FABRIC_HOME/$CHANNEL.block.tmp" "$FABRIC_HOME/$CHANNEL.block"
fi
