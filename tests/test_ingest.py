"""`apo ingest`: recordings made with LeRobot's own tools (`LeRobotDataset.create` /
`add_frame`, under HIL-SERL's and lerobot-rollout's intervention conventions) become a
round's interactions, versioned and trainable; a recording that does not fit the world is
refused in one line and nothing is written."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_store import apo, one_line

pytestmark = pytest.mark.slow  # versioned datasets through the CLI, and training


def record(root: Path, *, intervention: str, image: str = "observation.image", action_dim: int = 4,
           nan_at: int | None = None, episodes: int = 2, frames: int = 12, seed: int = 0) -> Path:
    """A recording as LeRobot's tools write it: a human took over mid-episode."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {image: {"dtype": "image", "shape": (64, 64, 3), "names": ["height", "width", "channel"]},
                "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
                "action": {"dtype": "float32", "shape": (action_dim,), "names": None},
                "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
                "next.success": {"dtype": "bool", "shape": (1,), "names": None}}
    if intervention:
        features[intervention] = {"dtype": "bool", "shape": (1,), "names": None}
    dataset = LeRobotDataset.create("elsewhere/recording", fps=20, features=features, root=root, use_videos=False)
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        for t in range(frames):
            action = rng.uniform(-1, 1, action_dim).astype(np.float32)
            if nan_at is not None and (episode, t) == (1, nan_at):
                action[0] = np.nan
            frame = {image: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
                     "observation.state": rng.normal(size=4).astype(np.float32), "action": action,
                     "next.reward": np.array([0.1 * t], dtype=np.float32),
                     "next.success": np.array([t == frames - 1]), "task": "push the puck to the goal"}
            if intervention:
                frame[intervention] = np.array([4 <= t < 9])
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return root


@pytest.fixture(scope="module")
def workdir(small_round_dirs, tmp_path_factory):
    """A workdir with dataset round 0 (the demos) and a round-0 model."""
    root = tmp_path_factory.mktemp("ingest")
    config = root / "config.yaml"
    config.write_text(f"train: {{bc_batch_size: 8, batch_size: 8, threads: 1}}\n"
                      f"paths: {{workdir: '{root / 'work'}'}}\n")
    demos = shutil.copytree(small_round_dirs[0], root / "work" / "episodes" / "expert" / "push")
    for command in (["dataset", "build", "0", "--data", str(demos)],
                    ["train", "--method", "bc", "--steps", "4", "--out", str(root / "r0")]):
        result = apo("--config", str(config), *command)
        assert result.returncode == 0, result.stderr[-2000:]
    return {"base": ["--config", str(config)], "work": root / "work", "r0": root / "r0", "root": root}


def next_round(work: Path) -> str:
    """The dataset round an ingest may build now: one after the last tagged."""
    tags = subprocess.run(["git", "tag", "--list"], cwd=work / "workspace", capture_output=True, text=True).stdout
    return str(len(tags.split()))


def state(work: Path) -> tuple:
    def git(*args) -> str:
        return subprocess.run(["git", *args], cwd=work / "workspace", capture_output=True, text=True).stdout

    episodes = sorted(str(p.relative_to(work)) for p in (work / "episodes").rglob("*") if p.is_file())
    return episodes, git("rev-parse", "HEAD"), git("tag", "--list"), git("status", "--porcelain")


@pytest.mark.parametrize("convention,feature,image,round_number,robot", [
    ("HIL-SERL", "complementary_info.is_intervention", "observation.image", 1, "hil-serl-arm"),
    ("lerobot-rollout", "intervention", "observation.images.front", 2, "rollout-arm"),
])
def test_a_lerobot_recording_becomes_a_round_and_trains(workdir, tmp_path, convention, feature, image, round_number,
                                                       robot):
    source = record(tmp_path / "recording", intervention=feature, image=image, seed=round_number)
    mapping = []
    if image != "observation.image":
        (tmp_path / "mapping.yaml").write_text(f"image: {image}\n")
        mapping = ["--mapping", str(tmp_path / "mapping.yaml")]
    result = apo(*workdir["base"], "ingest", str(source), "--round", str(round_number), "--robot", robot, *mapping)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"2 recorded episodes of {source}" in result.stdout and f"dataset-round-000{round_number}" in result.stdout
    lineage = json.loads(apo(*workdir["base"], "lineage", str(round_number), "--json").stdout)["lineage"]
    new = [e for e in lineage["episodes"] if e["episode_id"] in lineage["new_episode_ids"]]
    assert len(new) == 2 and {e["episode_id"].split(".")[0] for e in new} == {robot}
    assert sum(e["labels"].get("human", 0) for e in new) == 10  # the 5 steps of each takeover
    assert sum(e["labels"].get("failure_prone", 0) for e in new) == 8  # the 4 policy steps before each
    before = state(workdir["work"])  # the same recording again, as another robot: its episodes are in the dataset
    again = apo(*workdir["base"], "ingest", str(source), "--round", next_round(workdir["work"]), "--robot", "again",
                *mapping)
    one_line(again, f"{source} episode 0", "the same episode as", f"'{robot}.round-000{round_number}.",
             "already in the dataset")
    assert state(workdir["work"]) == before
    trained = apo(*workdir["base"], "train", "--method", "dagger", "--from", str(workdir["r0"]), "--epochs", "0.5",
                  "--out", str(tmp_path / "model"))
    assert trained.returncode == 0, trained.stderr[-2000:]


@pytest.mark.parametrize("damage,expected", [
    (dict(action_dim=6), ("'action'", "shape [6]", "expects [4]")),
    (dict(nan_at=3), ("episode 1", "'action'", "non-finite value at frame 3")),
    (dict(intervention=""), ("no intervention feature",)),
])
def test_a_recording_that_does_not_fit_is_refused_and_nothing_is_written(workdir, tmp_path, damage, expected):
    source = record(tmp_path / "recording", **{"intervention": "intervention", **damage})
    before = state(workdir["work"])
    one_line(apo(*workdir["base"], "ingest", str(source), "--round", next_round(workdir["work"]), "--robot",
                 "bad-arm"), *expected)
    assert state(workdir["work"]) == before
