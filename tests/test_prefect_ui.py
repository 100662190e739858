"""What an operator sees in Prefect: a tiny `apo run` against a real `prefect server`
(started here), then its API asked what the UI shows: runs named for their round, the
round run's INFO logs with the progress lines, the lineage artifact, an evaluation
progress artifact at 100%, the plot as an image the UI can open (the model store is a real
HTTP S3), and the round-level event with the gate's decision."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real Prefect server and a whole round

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict) -> list | dict:
    request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served_round(tmp_path_factory, s3_endpoint):
    """A prefect server, and bootstrap + round 1 run against it by `apo run` (models in S3)."""
    root = tmp_path_factory.mktemp("prefect-ui")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(root / "home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen([str(REPO / ".venv" / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        config = root / "tiny.yaml"
        config.write_text(f"""
env: {{tasks: [push], max_steps: 80}}
collect: {{interactions_per_round: 3, expert_demos_per_task: 3, robots: [sim-robot-0]}}
evaluation: {{episodes: 4, perturbations: [{{name: lighting, kind: lighting, magnitude: 0.5, seed: 3}}]}}
train: {{bc_steps: 20, epochs: 5, bc_batch_size: 8, threads: 1}}
cluster: {{engine: local}}
registry: {{url: "s3://apo-datasets/ui-models", s3_endpoint_url: "{s3_endpoint}"}}
paths: {{workdir: "{root / 'work'}"}}
""")
        run = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(config), "run", "--rounds", "1"],
                             env={**env, "PREFECT_API_URL": base}, capture_output=True, text=True, timeout=900,
                             cwd=REPO)
        assert run.returncode == 0, run.stderr[-3000:]
        time.sleep(3)  # the last logs and events are sent in the background
        yield base, run
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def runs_by_name(base: str) -> dict[str, dict]:
    return {run["name"]: run for run in api(base, "/flow_runs/filter", {"limit": 50})}


def test_flow_runs_are_named_for_their_round_and_show_it(served_round):
    base, _ = served_round
    runs = runs_by_name(base)
    assert {"bootstrap", "round-0001", "lifelong-from-round-0001"} <= set(runs)
    assert runs["round-0001"]["parameters"]["round_number"] == 1


def test_the_round_run_logs_its_progress_at_info(served_round):
    base, run = served_round
    round_run = runs_by_name(base)["round-0001"]
    logs = api(base, "/logs/filter", {"logs": {"flow_run_id": {"any_": [round_run["id"]]}}, "limit": 200})
    messages = [entry["message"] for entry in logs]
    assert all(entry["level"] >= 20 for entry in logs)
    assert any(m.startswith("round 1: success") for m in messages)  # the terminal's own lines
    assert any(m.startswith("round 1: evaluate: ") and "episodes" in m for m in messages)  # progress lines
    assert any("round 1: dataset dataset-round-0001" in m for m in messages)
    assert "INFO" not in run.stderr  # the terminal keeps to apo's own lines


def test_the_round_run_carries_its_lineage_and_an_evaluation_progress_that_reaches_100(served_round):
    base, _ = served_round
    round_run = runs_by_name(base)["round-0001"]
    artifacts = api(base, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [round_run["id"]]}},
                                                "limit": 100})
    lineage = next(a for a in artifacts if a["key"] == "apo-round-0001-lineage")["data"]
    assert "| method | apo |" in lineage and "| reference (parent) round | 0 |" in lineage
    assert "## Episodes per source" in lineage and "| expert | 3 |" in lineage and "| interaction | 3 |" in lineage
    assert "| sim-robot-0 |" in lineage and "| code commit |" in lineage and "| decision |" in lineage
    progress = [a for a in artifacts if a["type"] == "progress"]
    evaluation = [a for a in progress if (a["description"] or "").startswith("round 1: evaluate")]
    assert evaluation and max(a["data"] for a in evaluation) == 100.0
    assert any((a["description"] or "").startswith("round 1: label and version the dataset") for a in progress)
    table = json.loads(next(a for a in artifacts if a["key"] == "apo-rounds")["data"])
    assert "-" not in [cell for row in table for cell in row.values()]  # no bare dash (a markdown bullet)


def test_the_round_run_shows_the_stored_plot_as_an_image(served_round):
    base, _ = served_round
    round_run = runs_by_name(base)["round-0001"]
    artifacts = api(base, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [round_run["id"]]}},
                                                "limit": 100})
    image = next(a for a in artifacts if a["key"] == "apo-rounds-plot-image")
    assert image["type"] == "image"
    with urllib.request.urlopen(image["data"], timeout=30) as response:  # a browser's plain GET, no credentials
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_round_level_event_carries_the_decision(served_round):
    base, _ = served_round
    page = api(base, "/events/filter", {"filter": {"event": {"prefix": ["apo."]}}, "limit": 50})
    events = {(e["event"], e["resource"]["prefect.resource.id"]): e for e in page["events"]}
    assert ("apo.round.published", "apo.round.round-0001") in events
    decided = [e for (name, resource), e in events.items()
               if resource == "apo.round.round-0001" and name in ("apo.round.promoted", "apo.round.rejected")]
    assert len(decided) == 1 and decided[0]["payload"]["round"] == 1 and decided[0]["payload"]["reason"]
    assert decided[0]["payload"]["champion"] in (0, 1)
