"""prefect.yaml against a real `prefect server` (started by infra/start_server.sh): every
deployment deploys, and the learner's trigger starts a round after exactly 20
`episode.collected` events of the whole fleet (robots counted together)."""

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real Prefect server, deployments and triggers

REPO = Path(__file__).resolve().parent.parent

COUNT_RUNS = textwrap.dedent("""
    import asyncio, sys
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    async def main():
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[sys.argv[1]])))
            print(len(runs))
    asyncio.run(main())
""")

EMIT = textwrap.dedent("""
    import sys
    from prefect.events import emit_event
    for i in range(int(sys.argv[1])):
        emit_event(event="episode.collected", resource={"prefect.resource.id": sys.argv[2]},
                   payload={"episode_id": f"e{i}"})
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    started = subprocess.run(["bash", "infra/start_server.sh", str(port)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=200)
    assert started.returncode == 0, started.stderr
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    env["APO_PROJECT_DIR"] = str(REPO)
    yield env
    pid = int((REPO / ".apo" / "prefect-server.pid").read_text())
    subprocess.run(["pkill", "-TERM", "-P", str(pid)], check=False)
    os.kill(pid, 15)


def prefect(env, *args, timeout=300):
    return subprocess.run([str(REPO / ".venv" / "bin" / "prefect"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def python(env, code, *args):
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_deploy_all_and_the_fleet_trigger_counts_twenty_events(server):
    for pool in ("apo-process", "apo-robot-sim-robot-0"):
        created = prefect(server, "work-pool", "create", pool, "--type", "process")
        assert created.returncode == 0, created.stderr + created.stdout
    deployed = prefect(server, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    listed = prefect({**server, "COLUMNS": "300"}, "deployment", "ls")
    for name in ("collect-sim-robot-0", "learn-on-fleet-interactions", "learn-on-robot-interactions",
                 "lifelong-round-scheduled", "bootstrap", "rollback"):
        assert name in listed.stdout
    fleet, per_robot = "learn-on-fleet-interactions", "learn-on-robot-interactions"
    time.sleep(5)  # let the triggers service load the new automations
    python(server, EMIT, "12", "apo.robot.robot-a")
    python(server, EMIT, "7", "apo.robot.robot-b")  # 19 of the fleet: not yet
    time.sleep(8)
    assert python(server, COUNT_RUNS, fleet) == "0"
    python(server, EMIT, "1", "apo.robot.robot-b")  # the fleet's 20th interaction
    deadline = time.time() + 60
    while time.time() < deadline and python(server, COUNT_RUNS, fleet) == "0":
        time.sleep(2)
    assert python(server, COUNT_RUNS, fleet) == "1"
    assert python(server, COUNT_RUNS, per_robot) == "0"  # the per-robot option ships disabled
