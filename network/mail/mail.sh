#!/usr/bin/env bash
# Run the local stack's mail relay in the foreground: aiosmtpd's own Mailbox handler, which keeps
# every message it is given in a Maildir under the run dir (one file per message in new/), so
# alert e-mail and order notifications are delivered somewhere a person can read them. A real
# deployment points TRACEHUB_SMTP_HOST/PORT at its organisation's relay instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
run=${TRACEHUB_RUN:-$project/.run}
PORT=${SMTP_PORT:-1025}
PYTHON=${PYTHON:-$project/.venv/bin/python}
mkdir -p "$run/mail/cur" "$run/mail/new" "$run/mail/tmp"  # a Maildir
exec "$PYTHON" -m aiosmtpd -n -l "127.0.0.1:$PORT" -c aiosmtpd.handlers.Mailbox "$run/mail"
