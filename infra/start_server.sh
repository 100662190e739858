#!/usr/bin/env bash
# Start a real Prefect server on this machine (loopback) and wait until it is healthy.
#   infra/start_server.sh [PORT]       -> prints the PREFECT_API_URL to use
# Stops with: kill "$(cat .apo/prefect-server.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-4200}"
mkdir -p .apo
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# the UI asks the API at this address (Prefect's default is port 4200 whatever --port says)
export PREFECT_UI_API_URL="${PREFECT_UI_API_URL:-http://127.0.0.1:$PORT/api}"
.venv/bin/prefect server start --host 127.0.0.1 --port "$PORT" > .apo/prefect-server.log 2>&1 &
echo $! > .apo/prefect-server.pid
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/api/health" > /dev/null 2>&1; then
    echo "PREFECT_API_URL=http://127.0.0.1:$PORT/api"
    exit 0
  fi
  sleep 1
done
echo "prefect server did not become healthy in 120 s; see .apo/prefect-server.log" >&2
exit 1
