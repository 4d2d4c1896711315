#!/usr/bin/env bash
# Run stripe-mock (Stripe's API mock server) in the foreground on loopback only:
# HTTP on 12111, HTTPS on 12112. It keeps no state; the commerce payment tests talk to it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
export PATH="${TRACEHUB_BIN:-$project/.bin}:$PATH"
exec stripe-mock -http-addr "127.0.0.1:${STRIPE_MOCK_HTTP_PORT:-12111}" \
  -https-addr "127.0.0.1:${STRIPE_MOCK_HTTPS_PORT:-12112}"
