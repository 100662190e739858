"""A hostile or broken remote, through the real CLI and the real stores (git + DVC, a local
remote, moto S3 over HTTP): a changed DVC file list is refused before anything is swapped,
a credential given in a URL is used but never committed or printed, and a failed fetch
names its command, its remote and DVC's own error line."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cli_store import SECRET, dataset_state, one_line, published_workdir
from test_integrity import cli, dir_object, git, remote_object, state, work  # noqa: F401 (work: a fixture)

pytestmark = pytest.mark.slow  # a trained, versioned and published workdir, driven through the CLI


@pytest.fixture(scope="module")
def store(small_round_dirs, tmp_path_factory):
    return published_workdir(small_round_dirs, tmp_path_factory.mktemp("tamper"))


def swap_a_file_of_round_1_for_round_0s(work: Path) -> Path:
    """Rewrite round 1's ``.dir`` object on the remote as DVC writes one (sorted JSON), its
    meta/info.json now round 0's: well formed, and wrong."""
    md5, entries = dir_object(work, "dataset-round-0001")
    old = {entry["relpath"]: entry["md5"] for entry in dir_object(work, "dataset-round-0000")[1]}
    path = remote_object(work, md5)
    changed = [dict(entry, md5=old["meta/info.json"]) if entry["relpath"] == "meta/info.json" else entry
               for entry in entries]
    assert changed != entries
    path.write_bytes(json.dumps(changed, sort_keys=True).encode())
    return path


# ----- a file list is verified before it is used --------------------------------------------
@pytest.mark.parametrize("command", [["dataset", "checkout", "1"], ["rollback", "1", "--reason", "regression"]])
def test_a_changed_file_list_on_the_remote_is_refused_and_nothing_changes(store, work, command):
    assert cli(store, work, "rollback", "0", "--reason", "start from round 0").returncode == 0
    listing = swap_a_file_of_round_1_for_round_0s(work)
    shutil.rmtree(work / "workspace" / ".dvc" / "cache")
    before = state(work)
    one_line(cli(store, work, *command), str(listing), f"remote {work / 'dvc-remote'}", "dataset-round-0001",
             "hashes to", "refusing")
    assert state(work) == before  # round 0's data, datasets.dvc and the champion (round 0) as they were
    assert json.loads((work / "model-store" / "champion.json").read_text())["round"] == 0


def test_a_changed_file_list_in_the_cache_is_fetched_again_from_the_remote(store, work):
    md5, _ = dir_object(work, "dataset-round-0000")
    cached = work / "workspace" / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.write_bytes(cached.read_bytes().replace(b'"relpath"', b' "relpath"', 1))
    result = cli(store, work, "dataset", "checkout", "0")
    assert result.returncode == 0, result.stderr
    assert hashlib.md5(cached.read_bytes()).hexdigest() == md5.removesuffix(".dir")
    assert dataset_state(work / "workspace")[1] == git(work, "show", "dataset-round-0000:datasets.dvc")


# ----- a failed fetch names its cause ---------------------------------------------------------
def test_a_fetch_that_fails_names_the_command_the_remote_and_dvc_s_line(store, work):
    _, files = dir_object(work, "dataset-round-0000")
    shard = next(entry for entry in files if entry["relpath"].startswith("data/"))
    remote_object(work, shard["md5"]).unlink()
    shutil.rmtree(work / "workspace" / ".dvc" / "cache")
    before = state(work)
    line = one_line(cli(store, work, "rollback", "0", "--reason", "regression"), "dataset-round-0000",
                    "`dvc fetch", f"the remote {work / 'dvc-remote'}", "failed to transfer", shard["md5"])
    assert "exit code" not in line
    assert state(work) == before


# ----- credentials in URLs: used, never committed, never printed ------------------------------
def without_aws_credentials(tmp_path: Path) -> dict:
    """An environment with no AWS credentials at all: only those in the URL can sign a request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    return env


def s3_build(store, tmp_path: Path, endpoint: str, *, in_remote_url: bool, bucket: str = "apo-datasets"):
    """`apo dataset build 0` of the demos into a fresh S3 prefix, the key pair inside the
    remote URL or inside the endpoint URL: (result, config, workdir, prefix, env)."""
    prefix = f"tamper-{uuid.uuid4().hex[:8]}"
    host = endpoint.removeprefix("http://")
    remote = f"s3://testing:{SECRET}@{bucket}/{prefix}" if in_remote_url else f"s3://{bucket}/{prefix}"
    endpoint_url = f"http://{host}" if in_remote_url else f"http://testing:{SECRET}@{host}"
    config = tmp_path / "s3.yaml"
    config.write_text(f"dataset: {{remote: '{remote}', s3_endpoint_url: '{endpoint_url}'}}\n"
                      f"env: {{tasks: [push]}}\npaths: {{workdir: '{tmp_path / 'work'}'}}\n")
    demos = shutil.copytree(store["episodes"] / "expert" / "push", tmp_path / "demos")
    env = without_aws_credentials(tmp_path)
    result = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(config), "dataset", "build", "0",
                             "--data", str(demos)], capture_output=True, text=True, timeout=600, env=env)
    return result, config, tmp_path / "work", prefix, env


def s3_keys(endpoint: str, prefix: str, bucket: str = "apo-datasets") -> set[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return {item["Key"].removeprefix(prefix + "/") for page in pages for item in page.get("Contents", [])}


@pytest.mark.parametrize("in_remote_url", [True, False], ids=["remote-url", "endpoint-url"])
def test_credentials_in_a_url_are_used_but_never_committed(store, tmp_path, s3_endpoint, in_remote_url):
    result, _, s3_work, prefix, _ = s3_build(store, tmp_path, s3_endpoint, in_remote_url=in_remote_url)
    assert result.returncode == 0, result.stderr[-1500:]
    assert SECRET not in result.stdout + result.stderr
    workspace = s3_work / "workspace"
    history = git(s3_work, "log", "-p", "--all")
    committed = (workspace / ".dvc" / "config").read_text()
    assert ".dvc/config" in history and "apo-datasets" in committed
    assert SECRET not in history and SECRET not in committed and "testing" not in committed
    local = workspace / ".dvc" / "config.local"
    assert SECRET in local.read_text() and local.stat().st_mode & 0o777 == 0o600
    assert subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=workspace).returncode == 0
    # the push used the pair from the URL (there were no others): the remote holds every file
    md5, listing = dir_object(s3_work, "dataset-round-0000")
    expected = {f"files/md5/{m[:2]}/{m[2:]}" for m in [md5] + [entry["md5"] for entry in listing]}
    assert expected <= s3_keys(s3_endpoint, prefix)


def test_a_debug_traceback_holds_no_credential(store, work):
    endpoint = f"http://apo-user:{SECRET}@127.0.0.1:9"
    result = cli(store, work, "--debug", "--set", "registry.url=s3://apo-models/x", "--set",
                 f"registry.s3_endpoint_url={endpoint}", "rounds",
                 env={"AWS_ACCESS_KEY_ID": "apo-key", "AWS_SECRET_ACCESS_KEY": "apo-secret"}, timeout=120)
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert "http://***@127.0.0.1:9" in result.stderr and SECRET not in result.stderr + result.stdout


def test_a_fetch_from_a_deleted_bucket_names_the_remote_masked_and_dvc_s_line(store, tmp_path, s3_endpoint):
    import boto3

    bucket, client = f"apo-gone-{uuid.uuid4().hex[:8]}", boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=bucket)
    result, config, s3_work, prefix, env = s3_build(store, tmp_path, s3_endpoint, in_remote_url=True, bucket=bucket)
    assert result.returncode == 0, result.stderr[-1500:]
    for key in s3_keys(s3_endpoint, prefix, bucket):
        client.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
    client.delete_bucket(Bucket=bucket)
    shutil.rmtree(s3_work / "workspace" / ".dvc" / "cache")
    before = (*dataset_state(s3_work / "workspace"), git(s3_work, "status", "--porcelain"))
    checkout = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(config), "dataset", "checkout", "0"],
                              capture_output=True, text=True, timeout=600, env=env)
    one_line(checkout, "dataset-round-0000", f"remote s3://{bucket}/{prefix}", "`dvc fetch` said:",
             "do not exist neither locally nor on remote")  # DVC's own words; the key pair nowhere
    assert (*dataset_state(s3_work / "workspace"), git(s3_work, "status", "--porcelain")) == before
