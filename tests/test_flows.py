"""The loop under the real Prefect engine, against a real HTTP S3 (moto) and real DVC, with
every step in the flow's own process (``cluster.engine: local``; tests/test_fleet.py runs
the fan-out on Ray): bootstrap + a round end to end, then a run killed with SIGKILL
mid-training, re-run to completion with no lost or duplicated episode and no half-written
round promoted."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import boto3
import pytest
from conftest import bootstrap_and_one_round, use_ephemeral_prefect

from apo_core.data.round_dataset import workspace_for
from apo_core.recording.store import EpisodeStore
from apo_core.registry.store import registry_for
from apo_core.workdir import interaction_dir, round_dir, round_history

pytestmark = pytest.mark.slow  # whole rounds under the Prefect engine, killed and re-run


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory, s3_endpoint):
    """Tiny sizes; promote_margin 1.0 keeps round 0 the champion, so the same policy round
    collects for every round (its episodes must still all reach the dataset); an update
    replays 2 episodes of earlier rounds."""
    root = tmp_path_factory.mktemp("loop")
    bucket = f"loop-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    path = root / "tiny.yaml"
    path.write_text(f"""
env: {{tasks: [push], max_steps: 80}}
collect: {{interactions_per_round: 3, expert_demos_per_task: 3, robots: [sim-robot-0]}}
evaluation: {{episodes: 2, perturbations: [{{name: lighting, kind: lighting, magnitude: 0.5, seed: 3}}]}}
train: {{bc_steps: 20, epochs: 5, bc_batch_size: 8, threads: 1, checkpoint_every: 10, replay_episodes: 2}}
cluster: {{engine: local}}
dataset: {{remote: "s3://{bucket}/dvc", s3_endpoint_url: "{s3_endpoint}"}}
registry: {{url: "s3://{bucket}/models", s3_endpoint_url: "{s3_endpoint}", promote_margin: 1.0}}
paths: {{workdir: "{root / 'work'}"}}
""")
    use_ephemeral_prefect(root)
    return path


@pytest.fixture(scope="module")
def first_round(tiny_config):
    return bootstrap_and_one_round(tiny_config)


def test_bootstrap_and_a_round_run_end_to_end(first_round):
    config, history = first_round
    assert [h["round"] for h in history] == [0, 1]
    registry = registry_for(config)
    assert [m.round for m in registry.rounds()] == [0, 1]
    assert registry.manifest(1).parent_round == 0 and registry.manifest(1).method == "apo"
    assert registry.manifest(1).dataset["git_tag"] == "dataset-round-0001"
    assert [v.tag for v in workspace_for(config).versions()] == ["dataset-round-0000", "dataset-round-0001"]
    assert history[1]["takeovers_per_episode"] is not None and "lighting" in history[1]["suites"]
    actions = [e["action"] for e in registry.audit_log()]
    assert actions == ["promote", "reject"] and not history[1]["promoted"]
    assert (config.paths.workdir / "report" / "rounds.png").stat().st_size > 0


def _run_until(tiny_config, ready, timeout=600):
    """Start `apo run --rounds 3` in its own process group; SIGKILL it once ready() holds."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "--config", str(tiny_config), "run", "--rounds", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the kill point"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_round_killed_mid_training_completes_on_rerun(first_round, tiny_config):
    """SIGKILL while round 3 trains (round 2 done); the re-run completes round 3 with each
    episode once and nothing half-trained published. (A kill mid-collection, robot by
    robot, is tests/test_fleet.py's.)"""
    config, _ = first_round
    _run_until(tiny_config, lambda: (round_dir(config, 3) / "train.work").exists())
    registry = registry_for(config)
    assert 3 not in [m.round for m in registry.rounds()], "a half-trained round must not be published"
    assert registry.champion()[0]["round"] != 3

    result = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(tiny_config), "run", "--rounds", "3"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [h["round"] for h in round_history(config)] == [0, 1, 2, 3]
    for number in (2, 3):
        episodes = list(EpisodeStore(interaction_dir(config, number, "push", "sim-robot-0")))
        assert [e.meta.episode_index for e in episodes] == [0, 1, 2]
        assert len({e.meta.episode_id for e in episodes}) == 3
        seeds = [e.meta.seed for e in episodes]
        assert seeds == list(range(seeds[0], seeds[0] + 3))
    lineage = json.loads((workspace_for(config).root / "lineage" / "round-0003.json").read_text())
    ids = [e["episode_id"] for e in lineage["episodes"]]
    assert len(ids) == len(set(ids)) == 3 + 3 * 3  # demos + three rounds, each episode once
    assert lineage["new_episode_ids"] == [f"sim-robot-0.round-0003.push.e{i:06d}" for i in range(3)]
    assert len({h["dataset_md5"] for h in round_history(config)}) == 4
    assert [m.round for m in registry_for(config).rounds()] == [0, 1, 2, 3]
    read = json.loads((round_dir(config, 3) / "model" / "training.json").read_text())["episodes_read"]
    assert len(read["demonstrations"]) == 3 and read["current"] == lineage["new_episode_ids"]
    assert len(read["replayed"]) == 2 and all(".round-0001." in e or ".round-0002." in e for e in read["replayed"])


def test_a_round_that_replayed_earlier_rounds_reproduces_and_its_lineage_names_them(first_round, tiny_config):
    """Round 3 read 2 of rounds 1-2's 6 episodes: `apo reproduce 3` picks the same ones
    (identical weights) and `apo lineage 3` says which, of which round."""
    config, _ = first_round
    if len(round_history(config)) < 4:
        pytest.skip("needs the 3-round run of test_a_round_killed_mid_training_completes_on_rerun")
    command = [sys.executable, "-m", "flows.cli", "--config", str(tiny_config)]
    result = subprocess.run([*command, "reproduce", "3", "--json"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and json.loads(result.stdout)["identical_weights"], result.stderr[-2000:]
    lineage = subprocess.run([*command, "lineage", "3"], capture_output=True, text=True, timeout=300)
    assert lineage.returncode == 0, lineage.stderr
    assert "the update read 8 episodes: 3 demonstrations, 3 of round 3, replayed round " in lineage.stdout
    replayed = [line for line in lineage.stdout.splitlines() if " replayed " in line and ".round-000" in line]
    assert len(replayed) == 2


def test_a_round_retrained_from_its_tag_is_the_stored_one_whatever_happens_to_the_episodes(first_round, tiny_config):
    """The dataset tag is the truth: with an episode file of round 1 changed after its
    dataset was tagged, `apo reproduce 1` (the dataset checked out from the S3 remote into a
    scratch workspace) still gives the stored weights and evaluation outcomes, and it and
    `apo lineage 1` name the tag's md5."""
    config, _ = first_round
    registry = registry_for(config)
    md5 = registry.manifest(1).dataset["md5"]
    victim = sorted(EpisodeStore(interaction_dir(config, 1, "push", "sim-robot-0")).paths())[0]
    original = victim.read_bytes()
    victim.write_bytes(original[:-64] + bytes(64))  # tampered after the tag: must play no part
    try:
        result = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(tiny_config), "reproduce", "1",
                                 "--json"], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
        reproduced = json.loads(result.stdout)
        assert reproduced["identical_weights"] and reproduced["dataset_md5"] == md5
        assert reproduced["outcomes_identical"] == reproduced["outcomes_compared"] > 0
        lineage = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(tiny_config), "lineage", "1",
                                  "--json"], capture_output=True, text=True, timeout=300)
        assert lineage.returncode == 0 and json.loads(lineage.stdout)["dataset_md5"] == md5
        assert json.loads(lineage.stdout)["code_commit"] == reproduced["code_commit"]
    finally:
        victim.write_bytes(original)
