"""Fault injection through the real CLI and the real stores (files, git + DVC, moto S3 over
HTTP): each case gives one clear line (file / field / bucket named, exit code 2) or the
right behaviour, and leaves the stores as they were where it should."""

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_store import SECRET, apo, dataset_state, one_line, published_workdir, train_bc, tree_digest

from apo_core.recording.episodes import METADATA_KEY, read_episode
from apo_core.recording.store import EpisodeStore

pytestmark = pytest.mark.slow  # a trained, versioned and published workdir, driven through the CLI


def refused_by_dataset_build(store, *data: Path, expected: tuple[str, ...]) -> None:
    """`apo dataset build` on ``data`` fails in one line and leaves the dataset as it was."""
    before = dataset_state(store["work"] / "workspace")
    one_line(apo(*store["base"], "dataset", "build", "2", "--data", *map(str, data)), *expected)
    assert dataset_state(store["work"] / "workspace") == before


def rewrite(path: Path, *, column: str | None = None, values=None, meta_update: dict | None = None,
            meta_drop: str | None = None, target: Path | None = None) -> Path:
    """Write a changed copy of an episode file (one column's values or its metadata)."""
    table = pq.read_table(path)
    if column is not None:
        index = table.column_names.index(column)
        field = table.schema.field(column)
        flat = pa.array(np.asarray(values, dtype=np.float32).ravel(), type=field.type.value_type)
        table = table.set_column(index, field, pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    meta.update(meta_update or {})
    if meta_drop:
        meta.pop(meta_drop)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(table, target or path)
    return target or path


@pytest.fixture(scope="module")
def store(small_round_dirs, tmp_path_factory):
    return published_workdir(small_round_dirs, tmp_path_factory.mktemp("faults"))


@pytest.fixture
def data_copy(store, tmp_path):
    """A private copy of the demos and the round's episodes, to damage."""
    demos = shutil.copytree(store["episodes"] / "expert" / "push", tmp_path / "demos")
    round1 = shutil.copytree(store["episodes"] / "round-0001" / "push" / "r0", tmp_path / "round1")
    return demos, round1


# ----- silent poison -------------------------------------------------------------------
def test_nan_actions_are_refused_before_training_or_versioning(store, data_copy, tmp_path):
    demos, round1 = data_copy
    victim = sorted(round1.glob("episode-*.parquet"))[1]
    actions = read_episode(victim).actions.copy()
    actions[3, 1] = np.nan
    rewrite(victim, column="action", values=actions)
    out = tmp_path / "model"
    one_line(train_bc(store, demos, round1, out=out), str(victim), "'action'", "non-finite value at step 3")
    assert not out.exists() and not (tmp_path / "model.work" / "checkpoint.pt").exists()
    refused_by_dataset_build(store, demos, round1, expected=(str(victim), "'action'"))


def test_a_copied_episode_is_refused_not_trained_twice(store, data_copy, tmp_path):
    demos, round1 = data_copy
    shutil.copy(round1 / "episode-000000.parquet", round1 / "episode-000009.parquet")
    one_line(train_bc(store, demos, round1, out=tmp_path / "model"), "episode-000009.parquet",
             "episode-000000.parquet")
    assert not (tmp_path / "model").exists()


def test_another_episode_under_a_used_id_is_refused_not_skipped(store, data_copy):
    demos, round1 = data_copy
    used = read_episode(store["episodes"] / "round-0001" / "push" / "r0" / "episode-000000.parquet").meta.episode_id
    impostor = rewrite(round1 / "episode-000001.parquet", meta_update={"episode_id": used})
    (round1 / "episode-000000.parquet").unlink()  # the episode that owns the id is only in the dataset now
    refused_by_dataset_build(store, demos, round1, expected=(str(impostor), "already in the dataset with other content"))


def test_malformed_episode_metadata_names_the_missing_field(store, data_copy, tmp_path):
    demos, round1 = data_copy
    victim = rewrite(round1 / "episode-000002.parquet", meta_drop="seed")
    one_line(train_bc(store, demos, round1, out=tmp_path / "model"), str(victim), "missing ['seed']")


def test_a_checkpoint_of_other_data_is_never_resumed(store, data_copy, tmp_path):
    """A killed `apo train --out M`, then `apo train --out M` on other data: it starts
    fresh, says so, and the model names the data it was really trained on."""
    from apo_core.config import load_config
    from apo_core.data.steps import load_steps
    from apo_core.loop.update import train_policy

    demos, round1 = data_copy
    config = load_config(store["config"])
    out = tmp_path / "model"

    def crash(step, total, metrics):
        if step == 3:
            raise KeyboardInterrupt  # the kill, after the checkpoint of step 2
    with pytest.raises(KeyboardInterrupt):
        train_policy(config, load_steps([demos], config.labels), "bc", out.with_name("model.work"), on_step=crash)
    assert (tmp_path / "model.work" / "checkpoint.pt").exists()
    trained = apo(*store["base"], "train", "--method", "bc", "--steps", "6", "--data", str(demos), str(round1),
                  "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    assert "made by another run (different data_fingerprint" in trained.stderr and "starts fresh" in trained.stderr
    record = json.loads((out / "training.json").read_text())
    assert record["data_fingerprint"] == load_steps([demos, round1], config.labels).fingerprint()


def test_a_negative_step_budget_is_refused(store, tmp_path):
    trained = apo(*store["base"], "train", "--method", "bc", "--steps", "-5", "--out", str(tmp_path / "model"))
    one_line(trained, "train.bc_steps")
    assert not (tmp_path / "model").exists()


# ----- concurrent writers --------------------------------------------------------------
def test_four_collectors_write_into_one_store_at_once(store, tmp_path):
    out = tmp_path / "shared"
    processes = [subprocess.Popen([sys.executable, "-m", "flows.cli", *store["base"], "collect", "--task", "push",
                                   "--episodes", "3", "--policy", "random", "--out", str(out), "--robot", robot],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for robot in ("r0", "r1", "r2", "r3")]
    errors = [p.communicate(timeout=600)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    episodes = [read_episode(p) for p in EpisodeStore(out).paths()]  # every file reads back
    assert [e.meta.episode_index for e in episodes] == list(range(12))
    assert len({e.meta.episode_id for e in episodes}) == 12
    assert sorted(e.meta.robot_id for e in episodes) == sorted(["r0", "r1", "r2", "r3"] * 3)
    assert not list(out.glob(".*.tmp"))


# ----- integrity -----------------------------------------------------------------------
def test_rollback_to_a_tampered_round_changes_nothing(store):
    registry = store["registry"]
    before = tree_digest(registry)
    weights = registry / "rounds" / "0000" / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-10] + b"0123456789")
        after_tamper = tree_digest(registry)
        result = apo(*store["base"], "rollback", "0", "--reason", "regression")
        one_line(result, "rounds/0000/model.safetensors", "sha256 mismatch")
        assert tree_digest(registry) == after_tamper  # champion and audit log untouched
    finally:
        weights.write_bytes(original)
    assert tree_digest(registry) == before


def test_rollback_to_a_round_whose_dataset_tag_is_missing_changes_nothing(store):
    published = apo(*store["base"], "publish", "7", "--model", str(store["models"] / "r1"), "--method", "dagger",
                    "--parent", "0")
    assert published.returncode == 0, published.stderr
    manifest_path = store["registry"] / "rounds" / "0007" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["dataset"] = {"md5": "0" * 32 + ".dir", "git_tag": "dataset-round-0007", "git_commit": "0" * 40}
    manifest_path.write_text(json.dumps(manifest))
    before = tree_digest(store["registry"])
    result = apo(*store["base"], "rollback", "7", "--reason", "try")
    one_line(result, "round 7", "dataset-round-0007")
    assert tree_digest(store["registry"]) == before


@pytest.mark.parametrize("contents", [[], ["config.json"], ["config.json", "action_stats.json", "model.safetensors"]])
def test_publish_refuses_a_model_directory_that_does_not_load(store, tmp_path, contents):
    model = tmp_path / "half"
    model.mkdir()
    for name in contents:
        source = store["models"] / "r0" / name
        (model / name).write_bytes(source.read_bytes()[: len(source.read_bytes()) // 2])
    before = tree_digest(store["registry"])
    one_line(apo(*store["base"], "publish", "9", "--model", str(model), "--method", "bc"), str(model))
    assert tree_digest(store["registry"]) == before


def test_a_corrupt_champion_pointer_is_one_line_and_rollback_repairs_it(store):
    pointer = store["registry"] / "champion.json"
    good = pointer.read_bytes()
    pointer.write_bytes(b'{"round": ')
    status = apo(*store["base"], "status")
    one_line(status, "champion.json", "apo rollback N")
    listed = apo(*store["base"], "rounds")
    assert listed.returncode == 0 and "rollback" in listed.stdout and "dagger" in listed.stdout
    repaired = apo(*store["base"], "rollback", "1", "--reason", "repair the pointer")
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(pointer.read_text())["round"] == 1
    assert json.loads(good)["round"] == 1


def test_a_corrupt_audit_entry_is_one_line(store):
    entry = store["registry"] / "audit" / "20000101T000000.000000Z-broken.json"
    entry.write_text("{not json")
    try:
        one_line(apo(*store["base"], "audit"), str(entry), "corrupt audit entry")
    finally:
        entry.unlink()


def test_a_deployed_copy_that_changed_is_downloaded_again(store):
    from apo_core.config import load_config
    from apo_core.loop.robots import deploy_champion

    config = load_config(store["config"])
    number, local = deploy_champion(config)
    weights = local / "model.safetensors"
    pristine = weights.read_bytes()
    weights.write_bytes(b"garbage")
    assert deploy_champion(config) == (number, local)
    assert weights.read_bytes() == pristine


def test_collect_with_a_round_number_deploys_that_stored_round(store, tmp_path):
    """`apo collect --policy 0` (not the champion, round 1) acts with round 0 from the model
    store, verified, and its episodes are the interactions of round 1."""
    from apo_core.config import load_config
    from apo_core.registry.store import registry_for

    work = shutil.copytree(store["work"], tmp_path / "work", symlinks=True)
    shutil.rmtree(work / "deployed", ignore_errors=True)  # what other tests deployed
    result = apo(*store["base"], "--workdir", str(work), "collect", "--task", "push", "--episodes", "1",
                 "--policy", "0", "--robot", "r2")
    assert result.returncode == 0, result.stderr[-2000:]
    episodes = list(EpisodeStore(work / "episodes" / "round-0001" / "push" / "r2"))
    assert [e.meta.policy_round for e in episodes] == [0] and episodes[0].meta.robot_id == "r2"
    config = load_config(store["config"], {"paths": {"workdir": str(work)}})
    assert registry_for(config).matches(0, work / "deployed" / "round-0000")
    assert not (work / "deployed" / "round-0001").exists()


# ----- external failures: S3, DVC, workspace, disk --------------------------------------
def s3_config(store, tmp_path, url: str, endpoint: str) -> Path:
    path = tmp_path / "s3.yaml"
    path.write_text(f"registry: {{url: '{url}', s3_endpoint_url: '{endpoint}'}}\n"
                    f"dataset: {{remote: '{url}/dvc', s3_endpoint_url: '{endpoint}'}}\n"
                    f"paths: {{workdir: '{tmp_path / 'work'}'}}\n")
    return path


def test_a_wrong_s3_endpoint_is_one_line(store, tmp_path):
    config = s3_config(store, tmp_path, "s3://models/apo", "http://127.0.0.1:9")
    result = apo("--config", str(config), "rounds", env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET},
                 timeout=120)
    one_line(result, "s3://models/apo", "cannot reach the S3 endpoint http://127.0.0.1:9")


def test_a_missing_bucket_is_one_line(store, tmp_path, s3_endpoint):
    config = s3_config(store, tmp_path, "s3://no-such-bucket/apo", s3_endpoint)
    one_line(apo("--config", str(config), "status", env={"AWS_ACCESS_KEY_ID": "testing",
                                                         "AWS_SECRET_ACCESS_KEY": SECRET}), "no-such-bucket",
             "does not exist")


def test_missing_credentials_are_one_line(store, tmp_path, s3_endpoint):
    config = s3_config(store, tmp_path, "s3://apo-datasets/models", s3_endpoint)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    result = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(config), "rounds"],
                            capture_output=True, text=True, timeout=120, env=env)
    one_line(result, "no usable AWS credentials")


def test_an_s3_server_that_hangs_up_is_one_line(store, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def hang_up():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(1024)
            connection.close()  # the server goes away mid-request

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        config = s3_config(store, tmp_path, "s3://models/apo", f"http://127.0.0.1:{port}")
        result = apo("--config", str(config), "publish", "3", "--model", str(store["models"] / "r0"), "--method", "bc",
                     timeout=120)
        one_line(result, "s3://models/apo", "re-run to continue")
    finally:
        listener.close()


def test_a_failed_dvc_push_shows_its_cause_and_keeps_no_version(store, tmp_path, s3_endpoint):
    config = tmp_path / "remote.yaml"
    config.write_text(f"dataset: {{remote: 's3://no-such-bucket/dvc', s3_endpoint_url: '{s3_endpoint}'}}\n"
                      f"env: {{tasks: [push]}}\npaths: {{workdir: '{tmp_path / 'work'}'}}\n")
    demos = shutil.copytree(store["episodes"] / "expert" / "push", tmp_path / "demos")
    result = apo("--config", str(config), "dataset", "build", "0", "--data", str(demos), timeout=600)
    line = one_line(result, "dvc push", "check dataset.remote")
    assert "dvc.org/support" not in line and "Having any troubles" not in line


@pytest.mark.parametrize("workspace", ["/proc/apo-workspace", "FILE"])
def test_a_workspace_that_cannot_be_created_is_one_line(store, tmp_path, workspace):
    if workspace == "FILE":
        workspace = tmp_path / "a-file"
        workspace.write_text("not a directory")
    config = tmp_path / "ws.yaml"
    config.write_text(f"dataset: {{workspace: '{workspace}'}}\nenv: {{tasks: [push]}}\n"
                      f"paths: {{workdir: '{tmp_path / 'work'}'}}\n")
    demos = shutil.copytree(store["episodes"] / "expert" / "push", tmp_path / "demos")
    one_line(apo("--config", str(config), "dataset", "build", "0", "--data", str(demos)), str(workspace))


def _file_size_limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # smaller than any episode file


def test_a_full_disk_during_collection_is_one_line_and_keeps_the_finished_episodes(store, tmp_path):
    out = tmp_path / "episodes"
    result = apo(*store["base"], "collect", "--task", "push", "--episodes", "2", "--policy", "random", "--out",
                 str(out), preexec_fn=_file_size_limit)
    one_line(result, str(out / "episode-000000.parquet"), "cannot write the episode")
    assert not list(out.glob("episode-*.parquet")) and not list(out.glob(".*.tmp"))
