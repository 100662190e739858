"""Model store, same suite on a local directory and a real HTTP S3 (moto server)."""

import json
import multiprocessing
import os
import shutil
import uuid

import boto3
import numpy as np
import pytest
import torch

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.policy import ApoVlaConfig, ApoVlaPolicy, instruction_vocab
from apo_core.registry.object_store import AlreadyExists, Conflict, RegistryError, backend_for
from apo_core.registry.store import ModelRegistry


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Two real saved policies (random init, different seeds)."""
    directories = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        config = ApoVlaConfig(instruction_vocab=instruction_vocab(["push the puck to the goal"]))
        policy = ApoVlaPolicy(config, ActionTokenizer.fit(np.random.default_rng(seed).normal(size=(50, 4))))
        directory = tmp_path_factory.mktemp(f"model{seed}")
        policy.save_pretrained(directory)
        directories.append(directory)
    return directories


@pytest.fixture(params=["local", "s3"])
def store_url(request, tmp_path, s3_endpoint):
    if request.param == "local":
        return str(tmp_path / "store"), None
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/apo", s3_endpoint


def registry_for(store_url):
    return ModelRegistry(backend_for(*store_url))


def publish(registry, round_number, directory, success=0.5, parent=None):
    return registry.publish(
        round_number, directory, parent_round=parent, method="apo",
        dataset={"md5": f"md5-{round_number}.dir", "git_tag": f"dataset-round-{round_number:04d}", "git_commit": "abc"},
        hyperparameters={"lr": 5e-5}, metrics={"success_rate": success, "ci95_low": success / 2},
    )


def test_rounds_are_write_once_and_load_verified(store_url, saved_models, tmp_path):
    registry = registry_for(store_url)
    manifest = publish(registry, 1, saved_models[0])
    assert set(manifest.files) == {"model.safetensors", "config.json", "action_stats.json"}
    with pytest.raises(AlreadyExists):
        publish(registry, 1, saved_models[1])
    with pytest.raises(AlreadyExists):
        registry.backend.put_new("rounds/0001/model.safetensors", b"other weights")
    loaded = ApoVlaPolicy.from_pretrained(registry.download(1, tmp_path / "round1"))
    original = ApoVlaPolicy.from_pretrained(saved_models[0])
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), original.state_dict().values()))


def test_a_round_without_its_manifest_is_invisible(store_url, saved_models):
    registry = registry_for(store_url)
    publish(registry, 1, saved_models[0])
    # A crash between the files and the manifest: files of round 2 are there, no manifest.
    for path in sorted(saved_models[1].iterdir()):
        registry.backend.put_new(f"rounds/0002/{path.name}", path.read_bytes())
    assert [m.round for m in registry.rounds()] == [1]
    with pytest.raises(RegistryError, match="not found"):
        registry.manifest(2)
    with pytest.raises(RegistryError):
        registry.set_champion(2, action="promote", who="test", reason="half-written")
    # Re-running the publish completes it with the identical files.
    assert publish(registry, 2, saved_models[1]).round == 2
    assert [m.round for m in registry.rounds()] == [1, 2]


def test_tampered_weights_are_refused(store_url, saved_models, tmp_path):
    registry = registry_for(store_url)
    publish(registry, 1, saved_models[0])
    key = "rounds/0001/model.safetensors"
    data, _ = registry.backend.get(key)
    tampered = data[:-10]  # truncated
    if store_url[1] is None:
        (registry.backend.root / key).write_bytes(tampered)
    else:
        bucket = store_url[0].removeprefix("s3://").split("/")[0]
        boto3.client("s3", endpoint_url=store_url[1]).put_object(Bucket=bucket, Key=f"apo/{key}", Body=tampered)
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        registry.download(1, tmp_path / "x")


def test_rollback_and_forward_are_audited(store_url, saved_models):
    registry = registry_for(store_url)
    publish(registry, 1, saved_models[0], success=0.4)
    publish(registry, 2, saved_models[1], success=0.6, parent=1)
    registry.set_champion(1, action="promote", who="alice", reason="first")
    registry.set_champion(2, action="promote", who="bob", reason="better")
    registry.set_champion(1, action="rollback", who="carol", reason="regression in the field")
    assert registry.champion()[0]["round"] == 1
    registry.set_champion(2, action="promote", who="carol", reason="fixed")
    registry.record_rejection(2, who="pipeline", reason="not better")
    log = registry.audit_log()
    assert [(e["action"], e["from_round"], e["to_round"]) for e in log] == [
        ("promote", None, 1), ("promote", 1, 2), ("rollback", 2, 1), ("promote", 1, 2), ("reject", 2, 2),
    ]
    assert log[2]["who"] == "carol" and log[2]["dataset"]["git_tag"] == "dataset-round-0001"


def _link_to_passwd(model):
    (model / "notes.txt").symlink_to("/etc/passwd")
    return "notes.txt", "symbolic link"


def _link_in_a_subdirectory(model):
    (model / "extra").mkdir()
    (model / "extra" / "secret").symlink_to("/etc/passwd")
    return "extra/secret", "symbolic link"


def _subdirectory(model):
    (model / "checkpoints").mkdir()
    (model / "checkpoints" / "step-2.safetensors").write_bytes(b"weights the store would leave out")
    return "checkpoints", "subdirectory"


def _weights_as_a_link(model):
    os.rename(model / "model.safetensors", model.parent / "weights.safetensors")
    (model / "model.safetensors").symlink_to(model.parent / "weights.safetensors")
    return "model.safetensors", "symbolic link"


@pytest.mark.parametrize("damage", [_link_to_passwd, _link_in_a_subdirectory, _subdirectory, _weights_as_a_link])
def test_publish_stores_regular_files_only_and_names_what_is_not_one(store_url, saved_models, tmp_path, damage):
    registry = registry_for(store_url)
    model = shutil.copytree(saved_models[0], tmp_path / "copy" / "model")
    name, what = damage(model)
    with pytest.raises(RegistryError, match=what) as refused:
        publish(registry, 1, model)
    assert str(model / name) in str(refused.value)
    assert registry.backend.list("rounds/") == []  # checked before the first file was stored


def test_publish_needs_a_parent_round_that_is_stored(store_url, saved_models):
    registry = registry_for(store_url)
    with pytest.raises(RegistryError, match="parent round 0: not a round of"):
        publish(registry, 1, saved_models[0], parent=0)
    assert registry.backend.list("rounds/") == []
    publish(registry, 0, saved_models[0])
    assert publish(registry, 1, saved_models[1], parent=0).parent_round == 0
    with pytest.raises(RegistryError, match="parent round 99"):
        publish(registry, 2, saved_models[1], parent=99)
    assert [m.round for m in registry.rounds()] == [0, 1] and registry.backend.list("rounds/0002/") == []


def _promote_after_reading(url, endpoint, round_number, barrier, results):
    registry = ModelRegistry(backend_for(url, endpoint))
    _, etag = registry.champion()
    barrier.wait()
    try:
        registry.set_champion(round_number, action="promote", who=f"worker-{round_number}", reason="race",
                              expected_etag=etag)
        results.put(("won", round_number))
    except Conflict as exc:
        results.put(("conflict", str(exc)))


@pytest.mark.slow
def test_concurrent_promotions_have_exactly_one_winner(store_url, saved_models):
    registry = registry_for(store_url)
    publish(registry, 1, saved_models[0])
    publish(registry, 2, saved_models[1])
    registry.set_champion(1, action="promote", who="setup", reason="start")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_promote_after_reading, args=(*store_url, r, barrier, results)) for r in (1, 2)]
    for worker in workers:
        worker.start()
    outcomes = sorted(results.get(timeout=120)[0] for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["conflict", "won"]


def test_a_real_s3_client_sees_the_documented_layout(saved_models, s3_endpoint):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="layout")
    registry = ModelRegistry(backend_for("s3://layout/apo", s3_endpoint))
    publish(registry, 3, saved_models[0])
    registry.set_champion(3, action="promote", who="test", reason="layout")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="layout", Prefix="apo/rounds/")["Contents"]]
    assert sorted(keys) == [f"apo/rounds/0003/{n}" for n in
                            ("action_stats.json", "config.json", "manifest.json", "model.safetensors")]
    champion = json.loads(client.get_object(Bucket="layout", Key="apo/champion.json")["Body"].read())
    assert champion["round"] == 3 and champion["dataset"]["git_tag"] == "dataset-round-0003"


def test_a_report_is_stored_once_and_linked_only_where_a_browser_can_open_it(store_url, saved_models):
    import urllib.request

    registry = registry_for(store_url)
    publish(registry, 1, saved_models[0])
    url = registry.publish_report(1, "rounds.png", b"first plot")
    assert registry.publish_report(1, "rounds.png", b"a re-run's plot") == url  # write-once: the first stays
    assert registry.backend.get("reports/0001/rounds.png")[0] == b"first plot"
    assert [m.round for m in registry.rounds()] == [1]  # a report is not a round
    if store_url[1] is None:
        assert url is None  # a local file: nothing the UI could open
    else:
        with urllib.request.urlopen(url, timeout=30) as response:  # presigned: no credentials needed
            assert response.read() == b"first plot"
