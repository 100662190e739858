"""The fleet on a real local Ray (2 CPUs) through Prefect's RayTaskRunner, under the real
Prefect engine: two simulated robots collect a round in parallel and evaluation fans out
in chunks; a collection killed with SIGKILL resumes per robot with nothing lost or
duplicated; a Ray worker killed mid-chunk is retried; serial and Ray evaluations of the
same seeds agree exactly; bad cluster input is one clear line."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import bootstrap_and_one_round, use_ephemeral_prefect

from apo_core.recording.store import EpisodeStore
from apo_core.registry.store import registry_for
from apo_core.workdir import interaction_dir, round_dir, round_history

pytestmark = pytest.mark.slow  # a local Ray cluster and whole rounds on it

ROBOTS = ["sim-robot-0", "sim-robot-1"]


@pytest.fixture(scope="module")
def fleet_config(tmp_path_factory):
    """Tiny sizes; promote_margin 1.0 keeps round 0 the champion for every round."""
    root = tmp_path_factory.mktemp("fleet")
    path = root / "fan_out.yaml"
    path.write_text(f"""
env: {{tasks: [push], max_steps: 80}}
collect: {{interactions_per_round: 4, expert_demos_per_task: 3, robots: {ROBOTS}}}
evaluation: {{episodes: 6, perturbed_episodes: 2, perturbations: [{{name: lighting, kind: lighting, magnitude: 0.5, seed: 3}}]}}
train: {{bc_steps: 20, epochs: 2, bc_batch_size: 8, threads: 1, checkpoint_every: 10}}
cluster: {{engine: ray, num_cpus: 2, eval_chunk_episodes: 3}}
registry: {{promote_margin: 1.0}}
paths: {{workdir: "{root / 'work'}"}}
""")
    use_ephemeral_prefect(root)
    return path


def robot_episodes(config, number, robot):
    return list(EpisodeStore(interaction_dir(config, number, "push", robot)))


def episode_events() -> dict[str, int]:
    """``episode.collected`` events the Prefect API holds, counted per robot resource."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(event=EventNameFilter(name=["episode.collected"])), limit=50)
    counts: dict[str, int] = {}
    for event in page.events:
        counts[event.resource.id] = counts.get(event.resource.id, 0) + 1
    return counts


@pytest.fixture(scope="module")
def ray_round(fleet_config):
    """Bootstrap + round 1 in this process: RayTaskRunner on a local Ray with 2 CPUs."""
    return bootstrap_and_one_round(fleet_config)


def test_two_robots_collect_a_round_on_ray(ray_round):
    config, history = ray_round
    assert [h["round"] for h in history] == [0, 1]
    ids = []
    for robot in ROBOTS:
        episodes = robot_episodes(config, 1, robot)
        assert [e.meta.episode_index for e in episodes] == [0, 1]  # each robot its share, once
        assert {e.meta.robot_id for e in episodes} == {robot}
        first = config.collect.round_seed(1, robot)
        assert [e.meta.seed for e in episodes] == [first, first + 1]  # its own seeds
        ids += [e.meta.episode_id for e in episodes]
    assert len(ids) == len(set(ids)) == 4
    lineage = json.loads((config.paths.workdir / "workspace" / "lineage" / "round-0001.json").read_text())
    assert sorted(lineage["new_episode_ids"]) == sorted(ids)
    assert history[1]["takeovers_per_episode"] is not None
    counts = episode_events()
    assert all(counts.get(f"apo.robot.{robot}") == 2 for robot in ROBOTS), counts
    from tasks.progress import ProgressFile  # (prefect is imported after use_ephemeral_prefect's settings)

    trained = ProgressFile.read(round_dir(config, 1) / "train.progress.json")
    assert trained["done"] == trained["total"] > 0  # the update ran on a worker; its progress came back


def test_serial_and_ray_evaluations_agree_seed_by_seed(ray_round):
    """The round's evaluation ran in chunks on two Ray workers; the same chunks here, one
    after another in this process, give the same outcome on every seed."""
    from apo_core.evaluate import evaluation_chunks
    from apo_core.loop import learner

    config, _ = ray_round
    on_ray = json.loads((round_dir(config, 1) / "evaluation.json").read_text())
    chunks = evaluation_chunks(config, tasks=["push"], suites=learner.round_suites(config))
    assert len(chunks) == 3  # 6 unperturbed seeds in chunks of 3, then 2 lighting seeds
    serial = [learner.evaluate_model_on_chunk(config, round_dir(config, 1) / "model", chunk) for chunk in chunks]
    outcomes = {(r["suite"], o["seed"]): (o["success"], o["length"]) for r in on_ray["results"] for o in r["outcomes"]}
    here = {(r.suite, o.seed): (o.success, o.length) for r in serial for o in r.outcomes}
    assert here == outcomes and len(here) == 8


def test_the_fleet_starts_calls_in_order_one_per_cpu(fleet_config):
    """Ray starts queued tasks in no set order; the fleet submits one call per CPU and the
    next as one finishes, so the longest chunks (given first) never start last."""
    import ray
    from prefect import flow, task

    from apo_core.config import load_config
    from tasks.fanout import FanOut, ray_cluster

    @task(name="timed-sleep")
    def timed_sleep(seconds: float) -> tuple[float, float]:
        started = time.time()
        time.sleep(seconds)
        return started, time.time()

    @flow(name="fleet-order")
    def run() -> list[tuple[float, float]]:
        config = load_config(fleet_config)
        with ray_cluster(config) as warming, FanOut(config) as fan_out:
            ray.get(warming)  # both CPUs free: the first two calls start at once
            # no two calls end together (0.1 s apart at least), so none are submitted together
            return fan_out.map(timed_sleep, [dict(seconds=s) for s in (1.5, 1.0, 0.7, 0.6, 0.3, 0.25, 0.2, 0.15)])

    spans = run()
    starts = [start for start, _ in spans]
    assert max(starts[:2]) < min(starts[2:])  # the first two, together, before any other
    assert starts[2:] == sorted(starts[2:])
    for start, _ in spans:  # never more calls running than the cluster's 2 CPUs
        assert sum(1 for s, e in spans if s <= start < e) <= 2


def _ray_processes(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"ray::{name}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_worker_killed_mid_chunk_is_retried(ray_round, fleet_config):
    """SIGKILL the Ray worker evaluating a chunk: Ray retries the task on a fresh worker and
    the evaluation completes with every seed's outcome, the same as before."""
    from prefect import flow

    from tasks.fanout import FanOut
    from tasks.round_tasks import evaluate_round

    config, _ = ray_round
    config = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"episodes": 24})})
    number = 1
    saved = round_dir(config, number) / "evaluation.json"
    before = json.loads(saved.read_text())
    saved.rename(saved.with_suffix(".before"))
    killed = []

    def kill_one_worker():
        deadline = time.time() + 300  # the workers' warm-up (their worlds) comes first
        while time.time() < deadline and not killed:
            pids = _ray_processes("evaluate-chunk")
            if pids:
                time.sleep(0.5)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    @flow(name="evaluate-with-a-dying-worker")
    def evaluate_on_ray():
        with FanOut(config) as fan_out:
            return evaluate_round(config, fan_out, number, round_dir(config, number) / "model", ["push"])

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        metrics = evaluate_on_ray()
    finally:
        killer.join()
        saved.unlink(missing_ok=True)
        saved.with_suffix(".before").rename(saved)
    assert killed, "no evaluate-chunk worker was seen to kill"
    plain = next(r for r in metrics["results"] if r["suite"] == "none")
    assert [o["seed"] for o in plain["outcomes"]] == list(range(config.evaluation.seed, config.evaluation.seed + 24))
    earlier = {o["seed"]: o["success"] for r in before["results"] if r["suite"] == "none" for o in r["outcomes"]}
    assert all(o["success"] == earlier[o["seed"]] for o in plain["outcomes"] if o["seed"] in earlier)


def test_collection_killed_mid_round_resumes_per_robot(ray_round, fleet_config):
    config, _ = ray_round

    def recorded():
        return sum(len(robot_episodes(config, 2, robot)) for robot in ROBOTS)

    command = [sys.executable, "-m", "flows.cli", "--config", str(fleet_config), "run", "--rounds", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None and recorded() < 1:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the kill point"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_with = recorded()
    assert 1 <= killed_with < 4

    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert [h["round"] for h in round_history(config)] == [0, 1, 2]
    ids = []
    for robot in ROBOTS:
        episodes = robot_episodes(config, 2, robot)
        assert [e.meta.episode_index for e in episodes] == [0, 1]
        first = config.collect.round_seed(2, robot)
        assert [e.meta.seed for e in episodes] == [first, first + 1]
        ids += [e.meta.episode_id for e in episodes]
    lineage = json.loads((config.paths.workdir / "workspace" / "lineage" / "round-0002.json").read_text())
    assert sorted(lineage["new_episode_ids"]) == sorted(ids) and len(set(ids)) == 4
    assert [m.round for m in registry_for(config).rounds()] == [0, 1, 2]


def _apo(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_an_unreachable_cluster_is_one_clear_line(tmp_path):
    path = tmp_path / "far.yaml"
    path.write_text(f"cluster: {{address: '127.0.0.1:9'}}\npaths: {{workdir: '{tmp_path / 'work'}'}}\n")
    started = time.monotonic()
    result = _apo("--config", str(path), "run", "--rounds", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cluster.address: cannot reach a Ray cluster at 127.0.0.1:9" in lines[0], result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "work" / "episodes").exists()  # nothing was collected or written


def test_a_fleet_naming_one_robot_twice_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("collect: {robots: [arm-a, arm-b, arm-a]}\n")
    result = _apo("--config", str(path), "status")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"apo: error: {path}: collect: collect.robots: each robot must be named once, "
                                     f"['arm-a'] repeated")


def test_robots_collect_with_the_champion_of_the_moment_and_the_learner_takes_what_they_recorded(
        ray_round, fleet_config):
    """The actor and the learner apart: the `collect` flow of one robot records into the
    pending round with whichever round is champion at each episode; the `learn` flow then
    trains the pending round on exactly what the fleet recorded for it."""
    from apo_core.workdir import next_round
    from flows.lifelong import collect, learn

    config, _ = ray_round
    number = next_round(config)
    assert learn(str(fleet_config)) is None  # nothing recorded for the pending round yet: nothing to learn
    registry = registry_for(config)
    champion = registry.champion()[0]["round"]
    collect("sim-robot-1", 1, str(fleet_config))
    other = next(r.round for r in registry.rounds() if r.round != champion)
    registry.set_champion(other, action="rollback", who="test", reason="a new champion mid-collection")
    collect("sim-robot-1", 1, str(fleet_config))
    episodes = robot_episodes(config, number, "sim-robot-1")
    assert [e.meta.policy_round for e in episodes] == [champion, other]  # picked up at the next episode
    summary = learn(str(fleet_config))
    assert summary["round"] == number
    lineage = json.loads((config.paths.workdir / "workspace" / "lineage" / f"round-{number:04d}.json").read_text())
    assert sorted(lineage["new_episode_ids"]) == sorted(e.meta.episode_id for e in episodes)


def test_a_robot_collects_its_tasks_one_after_another(ray_round, tmp_path):
    """A robot is one writer. Two tasks, and a robot whose share is none (its calls end at
    once): the other robot's second task waits for its first instead of starting beside it
    on the free worker and meeting its own lock."""
    from prefect import flow

    from tasks.fanout import FanOut
    from tasks.robot_tasks import collect_round

    config, _ = ray_round
    model = round_dir(config, 0) / "model"
    config = config.model_copy(update={
        "env": config.env.model_copy(update={"tasks": ["push", "reach"]}),
        "collect": config.collect.model_copy(update={"interactions_per_round": 1}),  # robot 0: 1, robot 1: 0
        "paths": config.paths.model_copy(update={"workdir": tmp_path / "work"})})

    @flow(name="one-robot-two-tasks")
    def collect_on_ray() -> dict:
        with FanOut(config) as fan_out:
            return collect_round(config, fan_out, 1, 0, model, ["push", "reach"])

    assert collect_on_ray()["episodes"] == 2
    for task in ("push", "reach"):
        assert len(EpisodeStore(interaction_dir(config, 1, task, ROBOTS[0]))) == 1
