#!/bin/sh
# Run one Privacy Desk job from cron: `deploy/run-job.sh COMMAND [OPTIONS]`.
# Secrets (SLACK_BOT_TOKEN, database URLs with passwords, SMTP_PASSWORD) come from an
# environment file readable only by the service account, never from the crontab itself.
set -eu
cd "${PRIVACY_DESK_HOME:-/srv/privacy-desk}"
ENV_FILE="${PRIVACY_DESK_ENV:-/etc/privacy-desk/env}"
if [ -f "$ENV_FILE" ]; then
  set -a
  . "$ENV_FILE"
  set +a
fi
exec .venv/bin/python -m jobs "$@"
