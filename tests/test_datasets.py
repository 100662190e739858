"""Versioned datasets: LeRobot v3 layout read back by lerobot, real git + DVC, a real HTTP
S3 remote (moto server), a fresh clone restoring old rounds, corrupt shards refused."""

import hashlib
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apo_core.data.dataset import REPO_ID, DatasetFormatError, validate_dataset
from apo_core.data.lineage import read_record
from apo_core.data.restore import checkout_round
from apo_core.data.round_dataset import version_round, workspace_for
from apo_core.data.versioning import DatasetWorkspace, Remote

pytestmark = pytest.mark.slow  # three versioned rounds pushed to S3, and a fresh clone


@pytest.fixture(scope="module")
def three_rounds(small_round_dirs, config, s3_endpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    config = config.model_copy(update={"dataset": config.dataset.model_copy(update={
        "workspace": root / "ws", "remote": "s3://apo-datasets/dvc", "s3_endpoint_url": s3_endpoint})})
    expert, first, second = small_round_dirs
    data_files_after = {}
    results = []
    for round_number, dirs in enumerate([[expert], [expert, first], [expert, first, second]]):
        results.append(version_round(config, round_number, dirs))
        data_files_after[round_number] = {
            p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (root / "ws" / "datasets" / "data").rglob("*.parquet")
        }
    return config, results, data_files_after


def test_three_rounds_are_tagged_pushed_and_append_only(three_rounds):
    config, results, data_files_after = three_rounds
    md5s = [version.md5 for version, _, _ in results]
    assert len(set(md5s)) == 3
    workspace = workspace_for(config)
    assert [v.tag for v in workspace.versions()] == ["dataset-round-0000", "dataset-round-0001", "dataset-round-0002"]
    # Earlier shards are never rewritten: each round adds one new file.
    assert len(data_files_after[2]) == 3
    for name, digest in data_files_after[0].items():
        assert data_files_after[2][name] == digest
    _, summary, record = results[1]
    assert len(summary.episodes_added) == 3 and len(summary.episodes_skipped) == 3
    assert record["dataset_md5"] == md5s[1] and len(record["expert_demo_ids"]) == 3
    assert len(record["new_episode_ids"]) == 3 and record["label_counts"]["human"] > 0


def test_a_fresh_clone_pulls_old_rounds_that_match_their_lineage(three_rounds, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    config, results, _ = three_rounds
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(config.dataset_workspace), str(clone)], check=True)
    workspace = DatasetWorkspace(clone, Remote("s3://apo-datasets/dvc", config.dataset.s3_endpoint_url))
    for round_number in (0, 2):
        version = checkout_round(workspace, round_number)
        record = read_record(clone, round_number)
        assert version.md5 == record["dataset_md5"] == results[round_number][0].md5
        dataset = LeRobotDataset(REPO_ID, root=clone / "datasets")
        assert dataset.num_episodes == len(record["episodes"])
        assert dataset.num_frames == sum(sum(e["labels"].values()) for e in record["episodes"])
        frame = dataset[dataset.num_frames - 1]
        assert frame["observation.image"].shape == (3, 64, 64)
        assert frame["episode_id"] in {e["episode_id"] for e in record["episodes"]}


def test_a_corrupt_shard_is_refused_and_the_previous_version_restored(three_rounds):
    config, results, _ = three_rounds
    workspace = workspace_for(config)
    shard = sorted((workspace.dataset_root / "data").rglob("*.parquet"))[-1]
    shard.write_bytes(shard.read_bytes()[:1000])  # truncated
    with pytest.raises(DatasetFormatError, match=f"{shard}: not a readable Parquet shard"):
        workspace.commit_round(3)
    assert not workspace.git("tag", "--list", "dataset-round-0003").stdout.strip()
    workspace.restore_head()
    validate_dataset(workspace.dataset_root)
    assert workspace.current_md5() == results[2][0].md5


@pytest.mark.parametrize("damage,message", [
    (lambda t: t.drop_columns(["c"]), "column 'c' is missing"),
    (lambda t: t.set_column(t.schema.get_field_index("c"), "c", pa.array(["x"] * t.num_rows)), "column 'c' has type string"),
])
def test_schema_check_names_file_and_column(three_rounds, tmp_path, damage, message):
    config, _, _ = three_rounds
    copy = tmp_path / "datasets"
    shutil.copytree(workspace_for(config).dataset_root, copy)
    shard = sorted((copy / "data").rglob("*.parquet"))[0]
    pq.write_table(damage(pq.read_table(shard)), shard)
    with pytest.raises(DatasetFormatError, match=f"{shard}: {message}"):
        validate_dataset(copy)


def test_label_filters_normalise_with_round_zeros_statistics_in_dataset_and_training(small_round_dirs, config,
                                                                                     tmp_path):
    """With the optional filters on and no model at hand, the dataset build and the trainer
    use the expert demonstrations' statistics: those the round-0 policy is fit with."""
    from apo_core.data.dataset import append_round
    from apo_core.data.steps import load_steps
    from apo_core.labels import Label
    from apo_core.loop.update import train_policy

    directories = list(small_round_dirs[:2])
    filtering = config.labels.model_copy(update={"drop_out_of_range": True})
    bc_config = config.model_copy(update={"train": config.train.model_copy(update={"bc_steps": 1})})
    round_zero = train_policy(bc_config, load_steps(directories[:1], config.labels), "bc", tmp_path / "bc.work")

    unfiltered = load_steps(directories, config.labels)
    filtered = load_steps(directories, filtering)
    assert len(filtered) < len(unfiltered)
    assert (filtered.labels == load_steps(directories, filtering, round_zero.action_tokenizer).labels).all()

    append_round(tmp_path / "dataset", 1, directories, filtering, fps=20)
    stored = pq.read_table(tmp_path / "dataset" / "data", columns=["c"]).column("c").to_numpy()
    assert (stored == Label.DROPPED).sum() == len(unfiltered) - len(filtered)
    assert sorted(stored[stored != Label.DROPPED]) == sorted(filtered.labels)


def test_an_update_reads_its_round_the_demos_and_a_bounded_replay_from_the_tagged_dataset(three_rounds):
    """Round 2 with a replay of one earlier episode: the steps read are exactly those of the
    demonstrations, round 2's episodes and one of round 1's (one with a takeover), and the
    same choice again for the same seed."""
    from apo_core.data.training_steps import steps_from_dataset
    from apo_core.loop.update import episodes_read, selected

    config, results, _ = three_rounds
    version, _, record = results[2]
    checkout_round(workspace_for(config), 2)
    train = config.train.model_copy(update={"replay_episodes": 1})
    chosen = episodes_read(config.dataset_workspace, version, "apo", train)
    assert chosen == episodes_read(config.dataset_workspace, version, "apo", train)
    assert sorted(chosen["demonstrations"]) == sorted(record["expert_demo_ids"])
    assert sorted(chosen["current"]) == sorted(record["new_episode_ids"])
    replayed, = chosen["replayed"]
    entry = next(e for e in record["episodes"] if e["episode_id"] == replayed)
    assert entry["round"] == 1 and (entry["labels"].get("human") or entry["labels"].get("failure_prone"))
    steps = steps_from_dataset(workspace_for(config).dataset_root, images=True, md5=version.md5,
                               episodes=selected(chosen))
    everything = steps_from_dataset(workspace_for(config).dataset_root, images=True, md5=version.md5)
    assert set(steps.episode_ids) == set(selected(chosen)) < set(everything.episode_ids)
    rows = [i for i, e in enumerate(everything.episode_ids) if e in set(selected(chosen))]
    assert (steps.actions == everything.actions[rows]).all() and (steps.images == everything.images[rows]).all()
    assert episodes_read(config.dataset_workspace, version, "bc", train) is None
