"""Reproduce a model round from what is stored: the round's manifest and training record
(code commit, config, dataset tag and md5, threads), its dataset checked out from the remote
into a scratch workspace (verified file by file), its reference round from the model store.

    retrain on the same data with the same settings  ->  the same weights (sha256), or the
    largest parameter difference  ->  re-evaluate on the round's own seeds, outcome by outcome

Nothing of the workdir is changed: the scratch directory is removed at the end.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from apo_core.config import ApoConfig
from apo_core.data.restore import checkout_round
from apo_core.data.round_dataset import workspace_for
from apo_core.data.training_steps import steps_from_dataset
from apo_core.data.versioning import REMOTE_NAME, DatasetWorkspace
from apo_core.errors import ApoError
from apo_core.loop.provenance import stored_training_record
from apo_core.policy.interface import WEIGHTS_FILE
from apo_core.registry.object_store import sha256_hex
from apo_core.registry.store import MANIFEST, registry_for, round_prefix
from apo_core.workdir import MODEL, WORKSPACE, reproduce_dir


def _scratch_workspace(config: ApoConfig, scratch: Path) -> DatasetWorkspace:
    """A fresh clone of the dataset workspace, pointed at the same remote."""
    source = workspace_for(config)
    clone = DatasetWorkspace(scratch / WORKSPACE, source.remote)
    source.git("clone", "-q", str(source.root), str(clone.root))
    clone.dvc("remote", "add", "--local", "-f", "-d", REMOTE_NAME, source.remote.url)
    if source.remote.is_s3 and source.remote.endpoint_url:
        clone.dvc("remote", "modify", "--local", REMOTE_NAME, "endpointurl", source.remote.endpoint_url)
    clone.write_credentials()
    return clone


def _largest_difference(stored_dir: Path, policy) -> float:
    from apo_core.policy import load_policy

    stored = load_policy(stored_dir).state_dict()
    return max(float((stored[name] - tensor).abs().max()) for name, tensor in policy.state_dict().items())


def _evaluation_outcomes(round_config: ApoConfig, model_dir: Path, tasks: list[str]) -> dict[str, dict[str, int]]:
    from apo_core.evaluate import evaluation_chunks
    from apo_core.loop.learner import evaluate_model_on_chunk, round_suites
    from apo_core.registry.gate import summarise

    chunks = evaluation_chunks(round_config, tasks=tasks, suites=round_suites(round_config))
    rows = [evaluate_model_on_chunk(round_config, model_dir, chunk).to_dict() for chunk in chunks]
    return summarise(rows)["outcomes"]


def reproduce(config: ApoConfig, round_number: int, on_notice=print) -> dict:
    """Retrain and re-evaluate round N; the comparison with what is stored."""
    from apo_core.loop.layout import loop_tasks
    from apo_core.loop.update import episodes_read, selected, train_from_dataset
    from apo_core.policy import load_policy

    registry = registry_for(config)
    where = f"{config.registry_url}/{round_prefix(round_number)}{MANIFEST}"
    manifest = registry.verify(round_number)
    missing = [key for key in ("git_tag", "md5", "git_commit") if not manifest.dataset.get(key)]
    if missing:
        raise ApoError(f"{where}: round {round_number} has no dataset version to retrain from (its manifest's dataset "
                       f"names no {', '.join(missing)}: it was published while no dataset round {round_number} was "
                       f"versioned); it cannot be reproduced")
    training = stored_training_record(config, round_number)
    if "config" not in training or "dataset_md5" not in training:
        raise ApoError(f"{where}: round {round_number} was stored without a training record naming its config and "
                       f"dataset; it cannot be reproduced")
    round_config = ApoConfig.model_validate(training["config"])
    started = time.monotonic()
    reproduce_dir(config).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=reproduce_dir(config)) as scratch:
        scratch = Path(scratch)
        workspace = _scratch_workspace(config, scratch)
        on_notice(f"round {round_number}: checking out {manifest.dataset['git_tag']} from the remote")
        version = checkout_round(workspace, round_number, md5=manifest.dataset["md5"],
                                 commit=manifest.dataset["git_commit"], recorded_in=where)
        reference = None
        if manifest.method != "bc":
            reference = load_policy(registry.download(manifest.parent_round, scratch / "reference"))
        images = reference.needs_image if reference is not None else round_config.policy.use_image
        episodes = episodes_read(workspace.root, version, manifest.method, round_config.train)
        steps = steps_from_dataset(workspace.dataset_root, images=images, md5=version.md5, episodes=selected(episodes))
        on_notice(f"round {round_number}: retraining {manifest.method} on {len(steps)} steps "
                  f"({training['threads']} threads, as the round was)")
        policy, _ = train_from_dataset(round_config, steps, version, manifest.method, scratch / "work", reference,
                                       episodes)
        policy.save_pretrained(scratch / MODEL)
        weights = sha256_hex((scratch / MODEL / WEIGHTS_FILE).read_bytes())
        identical = weights == manifest.files.get(WEIGHTS_FILE)
        difference = 0.0 if identical else _largest_difference(registry.download(round_number, scratch / "stored"),
                                                                policy)
        on_notice(f"round {round_number}: re-evaluating on the round's {manifest.metrics.get('episodes')} seeds")
        outcomes = _evaluation_outcomes(round_config, scratch / MODEL, loop_tasks(round_config))
    stored = manifest.metrics.get("outcomes", {})
    compared = [(suite, key) for suite, by_seed in stored.items() for key in by_seed]
    same = sum(stored[suite][key] == outcomes.get(suite, {}).get(key) for suite, key in compared)
    return {"round": round_number, "dataset_tag": version.tag, "dataset_md5": version.md5,
            "code_commit": training.get("code_commit"), "config_hash": training.get("config_hash"),
            "weights_sha256": weights, "stored_weights_sha256": manifest.files.get(WEIGHTS_FILE),
            "identical_weights": identical, "largest_parameter_difference": difference,
            "outcomes_compared": len(compared), "outcomes_identical": same, "seconds": time.monotonic() - started}


def verdict(result: dict) -> str:
    """One line: what was reproduced, and how closely."""
    weights = ("identical weights" if result["identical_weights"]
               else f"weights differ (largest parameter difference {result['largest_parameter_difference']:.3g})")
    outcomes = f"{result['outcomes_identical']}/{result['outcomes_compared']} evaluation outcomes identical"
    return (f"round {result['round']}: {weights}, {outcomes}; dataset {result['dataset_tag']} md5 "
            f"{result['dataset_md5']} ({result['seconds']:.0f}s)")
