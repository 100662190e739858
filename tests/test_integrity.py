"""Integrity end to end, through the real CLI and stores (git + DVC with a directory
remote, the model store, the episode store): a restore keeps only what verifies and
destroys nothing on failure, history cannot be rewritten, the audit log and the champion
agree after a crash, and inputs that are wrong are refused at the door."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_store import SECRET, apo, dataset_state, one_line, published_workdir

from apo_core.recording.store import EpisodeStore

pytestmark = pytest.mark.slow  # a trained, versioned and published workdir, driven through the CLI


@pytest.fixture(scope="module")
def store(small_round_dirs, tmp_path_factory):
    return published_workdir(small_round_dirs, tmp_path_factory.mktemp("integrity"))


@pytest.fixture
def work(store, tmp_path):
    """A private copy of the published workdir (workspace, DVC remote, model store), to damage."""
    copy = shutil.copytree(store["work"], tmp_path / "work", symlinks=True)
    shutil.rmtree(copy / "deployed", ignore_errors=True)
    return copy


def cli(store, work: Path, *args, **kwargs):
    return apo(*store["base"], "--workdir", str(work), *args, **kwargs)


def git(work: Path, *args) -> str:
    return subprocess.run(["git", *args], cwd=work / "workspace", capture_output=True, text=True, check=True).stdout


def state(work: Path) -> tuple:
    """The dataset as committed and as checked out (data, pointer, lineage, history, index) and
    the champion pointer: what a failed command must leave exactly as it was."""
    return (*dataset_state(work / "workspace"), git(work, "status", "--porcelain"),
            (work / "model-store" / "champion.json").read_bytes())


def dir_object(work: Path, tag: str) -> tuple[str, list[dict]]:
    """A version's ``.dir`` md5 and file list, read from the DVC cache."""
    md5 = [line.split()[-1] for line in git(work, "show", f"{tag}:datasets.dvc").splitlines()
           if "md5:" in line][0]
    cache = work / "workspace" / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return md5, json.loads(cache.read_text())


def remote_object(work: Path, md5: str) -> Path:
    return work / "dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]


def file_md5s(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


# ----- 1. a failed restore destroys nothing ---------------------------------------------
def test_a_restore_that_cannot_fetch_its_data_changes_nothing(store, work):
    md5, _ = dir_object(work, "dataset-round-0000")
    remote_object(work, md5).unlink()
    shutil.rmtree(work / "workspace" / ".dvc" / "cache")
    before = state(work)
    one_line(cli(store, work, "rollback", "0", "--reason", "regression"), "dataset-round-0000",
             "neither in the cache nor on the remote")
    assert state(work) == before  # round 1's data still there, datasets.dvc not staged, champion round 1


# ----- 2. a restore never reports success on wrong data ------------------------------------
def test_a_remote_object_edited_in_place_is_refused_naming_the_file_and_both_hashes(store, work):
    _, files = dir_object(work, "dataset-round-0000")
    info = next(entry for entry in files if entry["relpath"] == "meta/info.json")
    edited = remote_object(work, info["md5"])
    edited.write_bytes(edited.read_bytes().replace(b'"fps"', b'"FPS"'))
    shutil.rmtree(work / "workspace" / ".dvc" / "cache")
    before = state(work)
    one_line(cli(store, work, "dataset", "checkout", "0"), "meta/info.json", info["md5"], "records")
    assert state(work) == before


def test_a_moved_tag_is_refused(store, work):
    git(work, "tag", "-f", "dataset-round-0000", "dataset-round-0001")
    before = state(work)
    one_line(cli(store, work, "dataset", "checkout", "0"), "dataset-round-0000", "points at commit", "lineage")
    assert state(work) == before


def test_a_file_edited_in_the_workspace_never_reaches_a_version(store, work):
    for number in ("0", "1"):
        assert cli(store, work, "dataset", "checkout", number).returncode == 0
    info = work / "workspace" / "datasets" / "meta" / "info.json"
    with open(info, "r+b") as handle:  # in place, as an editor that keeps the inode would
        handle.write(b"{ ")
    result = cli(store, work, "dataset", "checkout", "1")
    assert result.returncode == 0, result.stderr
    _, files = dir_object(work, "dataset-round-0001")
    assert file_md5s(work / "workspace" / "datasets") == {entry["relpath"]: entry["md5"] for entry in files}


# ----- 3. history cannot be rewritten ----------------------------------------------------
def test_a_versioned_round_is_never_rebuilt(store, work):
    before = state(work)
    one_line(cli(store, work, "dataset", "build", "1"), "dataset-round-0001 exists", "apo dataset build 2")
    assert state(work) == before


@pytest.mark.parametrize("data", ["missing", "empty"])
def test_a_build_from_a_missing_or_empty_source_is_refused(store, work, data):
    source = work / "nothing-here"
    if data == "empty":
        source.mkdir()
    before = state(work)
    expected = "no episode directory" if data == "missing" else "no new episodes"
    one_line(cli(store, work, "dataset", "build", "2", "--data", str(source)), "round 2", expected)
    assert state(work) == before and "dataset-round-0002" not in git(work, "tag", "--list")


def test_rounds_are_versioned_in_order(store, work):
    one_line(cli(store, work, "dataset", "build", "7"), "round 7", "the next dataset round is 2")


def test_a_published_round_takes_its_identity_from_the_store(store, work, tmp_path):
    model = shutil.copytree(store["models"] / "r0", tmp_path / "model")
    shutil.copyfile(work / "model-store" / "rounds" / "0000" / "manifest.json", model / "manifest.json")
    before = state(work)
    one_line(cli(store, work, "publish", "2", "--model", str(model), "--method", "bc"), "manifest.json",
             "must not hold")
    assert state(work) == before and not (work / "model-store" / "rounds" / "0002").exists()
    shutil.copytree(work / "model-store" / "rounds" / "0000", work / "model-store" / "rounds" / "0005")
    line = one_line(cli(store, work, "rounds"), "rounds/0005/manifest.json", "says round 0")
    assert "cannot be used" in line
    one_line(cli(store, work, "rollback", "5", "--reason", "poisoned"), "rounds/0005/manifest.json")


# ----- 4. the audit log and the champion agree ---------------------------------------------
def test_a_crash_between_the_audit_entry_and_the_move_is_completed_by_the_rerun(store, work):
    from apo_core.config import load_config
    from apo_core.loop.learner import promote_if_better
    from apo_core.registry.store import registry_for

    config = load_config(store["config"], {"paths": {"workdir": str(work)}})
    registry = registry_for(config)
    registry._record({"action": "promote", "from_round": 1, "to_round": 0, "who": "pipeline",
                      "reason": "decided just before a crash"})  # the entry, then the crash: no move
    status = cli(store, work, "status")
    assert status.returncode == 0 and "unfinished" in status.stdout and "round 0" in status.stdout
    outcome = promote_if_better(config, 0)
    assert outcome.promoted and registry.champion()[0]["round"] == 0
    assert [e["action"] for e in registry.audit_log()].count("promote") == 1  # no second decision recorded
    assert registry.pending_move() is None and "unfinished" not in cli(store, work, "status").stdout


@pytest.mark.parametrize("key,record,command,named", [
    ("audit/20990101T000000.000000Z-deadbeef.json",
     {"at": "soon", "action": "promote", "from_round": 0, "to_round": 1, "who": "x", "reason": "y"}, "audit", "at"),
    ("audit/20990101T000000.000000Z-deadbeef.json",
     {"at": 1.0, "action": "delete", "from_round": 0, "to_round": 1, "who": "x", "reason": "y"}, "audit", "action"),
    ("champion.json", {"round": 1, "set_at": "yesterday"}, "status", "set_at"),
    ("rounds/0001/manifest.json", {"round": 1, "files": "everything", "parent_round": 0, "method": "bc",
                                   "dataset": {}, "hyperparameters": {}, "metrics": {}}, "rounds", "files"),
])
def test_a_stored_record_of_the_wrong_shape_names_its_object_and_key(store, work, key, record, command, named):
    (work / "model-store" / key).write_text(json.dumps(record))
    line = one_line(cli(store, work, command), key, f"{named}:")
    assert "internal error" not in line


# ----- 5. inputs that pass the door but are wrong --------------------------------------------
def test_collection_seeds_that_overlap_the_validation_seeds_are_refused(store, work):
    one_line(cli(store, work, "--set", "collect.seed=799900000", "collect", "--task", "push", "--episodes", "1",
                 "--policy", "random"), "collect.seed", "overlap the validation seeds [800000000, 800000100)")


def test_a_second_collector_for_the_same_robot_is_refused(store, work):
    first = subprocess.Popen([sys.executable, "-m", "flows.cli", *store["base"], "--workdir", str(work), "collect",
                              "--task", "push", "--episodes", "40", "--policy", "random", "--robot", "r2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    lock = work / "locks" / "robot-r2.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text().startswith("pid")):
        time.sleep(0.1)
    try:
        one_line(cli(store, work, "collect", "--task", "push", "--episodes", "1", "--policy", "random",
                     "--robot", "r2"), "robot r2", "already collecting", "one writer per robot")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    ids = [e.meta.episode_id for e in EpisodeStore(work / "episodes" / "random" / "push")]
    assert len(ids) == len(set(ids))


def test_an_unbounded_budget_is_refused_before_anything_runs(store, work):
    one_line(cli(store, work, "train", "--method", "dagger", "--from", str(store["models"] / "r0"),
                 "--epochs", "1e12"), "train.epochs", "less than or equal to 1000")


def test_an_episode_field_of_the_wrong_type_is_refused_naming_it(store, work, tmp_path):
    source = shutil.copytree(work / "episodes" / "round-0001" / "push" / "r0", tmp_path / "round2")
    victim = sorted(source.glob("episode-*.parquet"))[0]
    table = pq.read_table(victim)
    index = table.column_names.index("next.success")
    strings = pa.array(["false"] * table.num_rows)
    pq.write_table(table.set_column(index, "next.success", strings).replace_schema_metadata(table.schema.metadata),
                   victim)
    before = state(work)
    one_line(cli(store, work, "dataset", "build", "2", "--data", str(source)), str(victim), "'next.success'",
             "expected booleans")
    assert state(work) == before


def test_a_workdir_with_non_ascii_characters_versions_its_dataset(store, tmp_path):
    work = tmp_path / "Versuchsräume-ロボット"
    shutil.copytree(store["work"] / "episodes" / "expert", work / "episodes" / "expert")
    result = apo(*store["base"], "--workdir", str(work), "dataset", "build", "0")
    assert result.returncode == 0, result.stderr[-1500:]
    assert "url = ../../dvc-remote" in (work / "workspace" / ".dvc" / "config").read_text()


def test_a_credential_in_an_endpoint_url_is_never_printed(store, work):
    endpoint = f"http://apo-user:{SECRET}@127.0.0.1:9"
    result = cli(store, work, "--set", "registry.url=s3://apo-models/x", "--set",
                 f"registry.s3_endpoint_url={endpoint}", "rounds",
                 env={"AWS_ACCESS_KEY_ID": "apo-key", "AWS_SECRET_ACCESS_KEY": "apo-secret"})
    line = one_line(result, "http://***@127.0.0.1:9")  # and the secret nowhere (one_line checks)
    assert "apo-user" not in line
    shown = cli(store, work, "--set", f"registry.s3_endpoint_url={endpoint}", "config", "show")
    assert shown.returncode == 0 and SECRET not in shown.stdout and "http://***@127.0.0.1:9" in shown.stdout
