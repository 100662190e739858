#!/usr/bin/env bash
# Screenshots of what an operator sees in the Prefect UI after one round, for docs/:
# a real `prefect server`, bootstrap + round 1 of a tiny config (`apo run`), then headless
# Chromium on the round run's logs, the keyed artifacts (the rounds table, the plotted values,
# each round's lineage) and round 1's lineage artifact.
#   infra/ui_screenshots.sh [PORT]      (needs Debian's chromium: apt-get install chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-4317}"
WORK="$(mktemp -d)"
export PREFECT_HOME="$WORK/prefect-home"
bash infra/start_server.sh "$PORT" > /dev/null
trap 'kill "$(cat .apo/prefect-server.pid)" 2> /dev/null || true; rm -rf "$WORK"' EXIT
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
cat > "$WORK/tiny.yaml" <<EOF
env: {max_steps: 80}
collect: {interactions_per_round: 3, expert_demos_per_task: 3, robots: [sim-robot-0]}
evaluation: {episodes: 4, perturbations: [{name: lighting, kind: lighting, magnitude: 0.5, seed: 3}]}
train: {bc_steps: 20, epochs: 5, bc_batch_size: 8, threads: 1}
cluster: {engine: local}
paths: {workdir: "$WORK/work"}
EOF
.venv/bin/apo --config "$WORK/tiny.yaml" run --rounds 1
read -r RUN LINEAGE < <(.venv/bin/python - <<'EOF'
import json, os, urllib.request

def api(path, body):
    request = urllib.request.Request(os.environ["PREFECT_API_URL"] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    return json.loads(urllib.request.urlopen(request).read())

run = next(r for r in api("/flow_runs/filter", {"limit": 50}) if r["name"] == "round-0001")
lineage = next(a for a in api("/artifacts/filter", {"limit": 100}) if a["key"] == "apo-round-0001-lineage")
print(run["id"], lineage["id"])
EOF
)
UI="http://127.0.0.1:$PORT"
shoot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$WORK/chromium" --hide-scrollbars \
    --window-size=1400,1000 --virtual-time-budget=20000 --screenshot="docs/$1" "$2" 2> /dev/null
  echo "docs/$1"
}
shoot ui-round-run-logs.png "$UI/runs/flow-run/$RUN?tab=Logs"
shoot ui-round-run-artifacts.png "$UI/artifacts"
shoot ui-round-lineage.png "$UI/artifacts/artifact/$LINEAGE"
