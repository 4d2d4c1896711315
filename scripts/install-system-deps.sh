#!/usr/bin/env bash
# Install the Debian packages the local stack needs, if any is missing: Mosquitto, PostgreSQL,
# and the small tools the scripts use. Go and Python come with the machine.
set -euo pipefail
need=()
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null || need+=(postgresql-client)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v setpriv >/dev/null || need+=(util-linux)
command -v socat >/dev/null || need+=(socat)
# Browser tests of the QR page (selenium drives Debian's Chromium) and the web bench's load.
[[ -x /usr/bin/chromium ]] || need+=(chromium)
[[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)
command -v wrk >/dev/null || need+=(wrk)
# The buyer page's X.509 library comes from npm (make web-deps: npm ci in web/).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
# The trace page draws genealogy graphs with Graphviz (dot -> SVG, server-side).
command -v dot >/dev/null || need+=(graphviz)
# A CJK font, so the Chinese page renders in the headless browser (Arabic and Latin come with
# Chromium's dependencies).
[[ -d /usr/share/fonts/truetype/wqy ]] || need+=(fonts-wqy-zenhei)
# Trade document PDFs (commerce/documents/pdf.py) embed DejaVu Sans (Latin, Arabic) and the CJK
# font above.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need+=(fonts-dejavu-core)
((${#need[@]} == 0)) && exit 0

sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "deps: installing Debian packages: ${need[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
# Debian starts its own broker and cluster on the default ports; TraceHub runs its own instances
# on other ports and does not need them.
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  "${sudo[@]}" systemctl disable --now mosquitto postgresql >/dev/null 2>&1 || true
fi
