#!/usr/bin/env bash
# Create a process work pool (if missing) and start a worker for it, in the foreground.
#   infra/start_worker.sh                         the learner's pool, apo-process
#   infra/start_worker.sh apo-robot-sim-robot-0   a robot's own pool (run it on the robot's computer)
# Needs PREFECT_API_URL (see infra/start_server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PREFECT_API_URL:?set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api}"
POOL="${1:-apo-process}"
export APO_PROJECT_DIR="${APO_PROJECT_DIR:-$PWD}"
.venv/bin/prefect work-pool inspect "$POOL" > /dev/null 2>&1 \
  || .venv/bin/prefect work-pool create "$POOL" --type process
exec .venv/bin/prefect worker start --pool "$POOL"
