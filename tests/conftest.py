"""Shared fixtures. Envs are built once per task and process: under EGL a second env made
after close() renders black frames (docs/world.md §3), and building one costs ~0.5 s."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
# Prefect reads its settings once, when first imported, which may be by any test file of a
# worker: the start-up timeout must be there before (the first start takes 18-35 s here,
# more on a loaded machine; Prefect's default is 20 s).
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_CONFIG = REPO_ROOT / "configs" / "state.yaml"  # the fast state-only option


def use_ephemeral_prefect(root: Path) -> None:
    """Flows of this test process run against Prefect's temporary API, started once (its
    start-up timeout is set above, before anything imports Prefect)."""
    os.environ["PREFECT_HOME"] = str(root / "prefect-home")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"


def bootstrap_and_one_round(config_path: Path):
    """Bootstrap + round 1 in this process, under the real Prefect engine: (config, history)."""
    from apo_core.config import load_config
    from flows.lifelong import lifelong

    history = lifelong(str(config_path), None, 1, "apo")
    return load_config(config_path), history


@pytest.fixture(scope="session")
def config():
    """The state-only option (configs/state.yaml): the worlds render and the policies train
    fastest; tests of the camera policy load the defaults."""
    from apo_core.config import load_config

    return load_config(STATE_CONFIG)


@pytest.fixture(scope="session")
def env_for(config):
    from apo_core.envs import make_env

    built = {}

    def get(task: str = "push"):
        if task not in built:
            built[task] = make_env(task, config.env)
        return built[task]

    return get


@pytest.fixture(scope="session")
def small_round_dirs(env_for, config, tmp_path_factory):
    """Real recorded episodes on push: 3 expert demos, and two batches of random-policy
    episodes (3 and 2) with the simulated human taking over."""
    from apo_core.actors import RandomActor
    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.recording.collector import collect_episodes
    from apo_core.recording.store import EpisodeStore

    env = env_for("push")
    root = tmp_path_factory.mktemp("small_round")
    common = dict(robot_id="test", fps=20)
    collect_episodes(env, ScriptedExpert(env), None, EpisodeStore.for_writing(root / "expert"), collection="expert",
                     until=3, base_seed=0, source="expert", policy_round=None, **common)
    human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
    # Both batches come from the same policy round: a champion that was not replaced
    # collects for several rounds, and its episodes must still be told apart.
    collect_episodes(env, RandomActor(4), human, EpisodeStore.for_writing(root / "round-0001"),
                     collection="round-0001", until=3, base_seed=50, source="interaction", policy_round=0, **common)
    collect_episodes(env, RandomActor(4), human, EpisodeStore.for_writing(root / "round-0002"),
                     collection="round-0002", until=2, base_seed=80, source="interaction", policy_round=0, **common)
    return root / "expert", root / "round-0001", root / "round-0002"


@pytest.fixture(scope="session")
def small_round(small_round_dirs, config):
    """The expert demos and the first interaction batch as labelled training steps."""
    from apo_core.data.steps import load_steps

    return load_steps(small_round_dirs[:2], config.labels)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real HTTP S3 (moto's server mode) on 127.0.0.1 with a bucket; dvc-s3 needs HTTP."""
    from moto.server import ThreadedMotoServer

    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="apo-datasets")
    yield endpoint
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _stop_prefect_temporary_server():
    """Prefect stops its temporary API server from an atexit hook, after pytest has closed the
    stream its log handler writes to ("--- Logging error ---" after the summary): stop it
    here, while the streams are open."""
    yield
    if "prefect.server.api.server" in sys.modules:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker
        from prefect.server.api.server import SubprocessASGIServer

        for worker in (APILogWorker, EventsWorker):  # what they still hold, while the server listens
            worker.drain_all(timeout=30)

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
