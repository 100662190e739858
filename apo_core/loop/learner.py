"""The learner side of one lifelong-learning round, each step idempotent and resumable.

    label + version dataset -> update (reference = the champion) -> evaluate -> publish
    round -> promote if better

(The robot side, deploy -> collect, is :mod:`apo_core.loop.robots`.) Every step first looks at
what is already on disk / in the stores and continues from there, so a round killed at
any point is completed by running it again: a tagged dataset is not rebuilt, training
resumes from its checkpoint, a finished model / evaluation / published round / promotion
decision is reused. Nothing here imports Prefect or Ray: ``tasks/`` wraps these.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from apo_core.config import ApoConfig, Method
from apo_core.data.lineage import config_hash
from apo_core.data.restore import checkout_round
from apo_core.data.round_dataset import version_round, workspace_for
from apo_core.data.steps import Steps, expert_mask
from apo_core.data.training_steps import steps_from_dataset
from apo_core.data.versioning import DatasetVersion
from apo_core.envs import MetaWorldEnv, process_env
from apo_core.errors import ApoError
from apo_core.evaluate import NO_PERTURBATION, EvalChunk, EvalResult, chunk_envs, evaluation_chunks, merge_chunks
from apo_core.evaluate import evaluate_chunk as evaluate_chunk_with
from apo_core.loop.layout import dataset_sources, round_dir
from apo_core.policy import Policy, cached_policy, initial_policy, load_policy
from apo_core.policy.actor import VlaActor
from apo_core.registry.gate import GateInputError, paired_gain, promotion_decision, summarise
from apo_core.registry.store import MANIFEST, CorruptPointer, NotFound, registry_for, round_prefix

TRAINING_RECORD = "training.json"


def build_dataset(config: ApoConfig, round_number: int, tasks: list[str], on_episode=None
                  ) -> tuple[DatasetVersion, dict]:
    version, _, record = version_round(config, round_number, dataset_sources(config, round_number, tasks),
                                       on_episode=on_episode)
    return version, record


def train_policy(config: ApoConfig, steps: Steps, method: Method, work_dir: Path, *,
                 reference: Policy | None = None, on_step=None, on_notice=None) -> Policy:
    """Round 0 by behaviour cloning (``bc``: from ``policy.pretrained`` or a fresh policy),
    or round k+1 by ``method`` from ``reference``.

    ``reference`` (round k) is consumed: its module receives the update.
    """
    from apo_core.training import train

    if method == "bc":
        demonstrations = steps.select(expert_mask(steps))
        if not len(demonstrations):
            raise ValueError("behaviour cloning needs expert demonstration steps; none were given")
        reference = initial_policy(config.policy, demonstrations, image_size=config.env.image_size,
                                   action_dim=MetaWorldEnv.action_dim, gripper_dim=MetaWorldEnv.gripper_dim,
                                   seed=config.train.seed)
    elif reference is None:
        raise ApoError(f"{method} needs the reference: the previous round's model")
    return train(reference, steps, method, config.train, work_dir, on_step=on_step, on_notice=on_notice)


def save_model(policy: Policy, directory: Path, record: dict) -> Path:
    """Save a trained policy with its training record (what it was trained on, how),
    atomically: the directory appears complete or not at all."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    policy.save_pretrained(partial)
    (partial / TRAINING_RECORD).write_text(json.dumps(record, indent=2))
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)
    return directory


def training_record(model_dir: Path) -> dict:
    path = Path(model_dir) / TRAINING_RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def dataset_steps(config: ApoConfig, version: DatasetVersion, *, images: bool) -> Steps:
    """Dataset round N as training steps, read from the workspace, which must hold exactly
    that version (the round's dataset step has just built or verified it)."""
    workspace = workspace_for(config)
    if workspace.current_md5() != version.md5:
        raise ApoError(f"{workspace.root}: datasets/ holds md5 {workspace.current_md5()}, not {version.tag}'s "
                       f"{version.md5}: `apo dataset checkout {version.round}` first")
    return steps_from_dataset(workspace.dataset_root, images=images, md5=version.md5)


def train_from_dataset(config: ApoConfig, steps: Steps, version: DatasetVersion, method: Method, work: Path,
                       reference: Policy | None, on_step=None, on_notice=None) -> tuple[Policy, dict]:
    """Train on a dataset version; the policy and the record that says how, from what."""
    from apo_core.loop.report import code_commit

    policy = train_policy(config, steps, method, work, reference=reference, on_step=on_step, on_notice=on_notice)
    record = {"method": method, "dataset_tag": version.tag, "dataset_md5": version.md5, "rows": len(steps),
              "episodes": len(set(steps.episode_ids)), "threads": config.train.threads, "code_commit": code_commit(),
              "config_hash": config_hash(config), "config": config.model_dump(mode="json")}
    return policy, record


def train_round(config: ApoConfig, round_number: int, method: Method, reference_dir: Path | None,
                version: DatasetVersion, on_step=None, on_notice=None) -> Path:
    """Train model round N on dataset round N as versioned; the result appears atomically
    (or not at all)."""
    model_dir = round_dir(config, round_number) / "model"
    if model_dir.is_dir():  # saved atomically: complete
        return model_dir
    reference = load_policy(reference_dir) if method != "bc" and reference_dir else None
    images = reference.needs_image if reference is not None else config.policy.use_image
    steps = dataset_steps(config, version, images=images)
    work = round_dir(config, round_number) / "train.work"
    policy, record = train_from_dataset(config, steps, version, method, work, reference, on_step, on_notice)
    save_model(policy, model_dir, record)
    shutil.rmtree(work, ignore_errors=True)
    return model_dir


def round_suites(config: ApoConfig) -> list[str]:
    """The suites every round is evaluated on: unperturbed, then each perturbation suite."""
    return [NO_PERTURBATION, *(p.name for p in config.evaluation.perturbations)]


def prepare_worker(config: ApoConfig, tasks: list[str]) -> None:
    """Build what this process plays a round with before its first chunk arrives: the
    rendered world a robot collects in and the worlds of every evaluation chunk (kept by
    :mod:`apo_core.envs.pool`); importing this module loaded the policy code. A fresh
    worker otherwise pays this (tens of seconds with 5 suites) inside its first collection or
    evaluation chunk, after the driver's serial steps instead of during them."""
    for task in tasks:
        process_env(task, config.env)
    for chunk in evaluation_chunks(config, tasks=tasks, suites=round_suites(config)):
        chunk_envs(config, chunk)


def evaluate_chunk(config: ApoConfig, model_dir: Path, chunk: EvalChunk) -> EvalResult:
    """One chunk of a round's evaluation (policy alone), on this process's envs and policy copy."""
    policy = cached_policy(model_dir)
    return evaluate_chunk_with(config, lambda env: VlaActor(policy, env.instruction), chunk)


def saved_evaluation(config: ApoConfig, round_number: int) -> dict | None:
    path = round_dir(config, round_number) / "evaluation.json"
    return json.loads(path.read_text()) if path.exists() else None


def save_evaluation(config: ApoConfig, round_number: int, results: list[EvalResult]) -> dict:
    """The round's evaluation record (gate metrics + every outcome by seed), written atomically."""
    rows = [r.to_dict() for r in merge_chunks(results)]
    metrics = {**summarise(rows), "results": rows}
    path = round_dir(config, round_number) / "evaluation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(metrics, indent=2))
    path.with_suffix(".tmp").replace(path)
    return metrics


def publish_round(config: ApoConfig, round_number: int, model_dir: Path, *, parent_round: int | None,
                  method: str, version: DatasetVersion, metrics: dict) -> None:
    registry = registry_for(config)
    try:
        registry.manifest(round_number)
        return  # already published (a re-run after a crash)
    except NotFound:
        pass
    gate_metrics = {k: v for k, v in metrics.items() if k != "results"}
    registry.publish(
        round_number, model_dir, parent_round=parent_round, method=method,
        dataset={"md5": version.md5, "git_tag": version.tag, "git_commit": version.commit},
        hyperparameters=config.train.model_dump(mode="json"), metrics=gate_metrics,
    )


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    reason: str
    champion_round: int
    gain: dict | None = None  # paired difference to the champion it was compared with (unperturbed)


def promote_if_better(config: ApoConfig, round_number: int, who: str = "pipeline") -> PromotionOutcome:
    """The gate: promote round N only if it beats the champion; audit either way (once)."""
    registry = registry_for(config)
    registry.complete_pending_move()  # a crash between an entry and its move: finish the move
    candidate_metrics = registry.manifest(round_number).metrics
    log = registry.audit_log()
    aborted = {event["aborts"] for event in log if event["action"] == "aborted"}
    for event in reversed(log):
        decided = event["action"] in ("promote", "reject") and event["id"] not in aborted
        if event["to_round"] == round_number and decided:
            champion, _ = registry.champion()
            compared = event["from_round"]
            gain = paired_gain(candidate_metrics, registry.manifest(compared).metrics) if compared is not None else None
            return PromotionOutcome(event["action"] == "promote", event["reason"], champion["round"], gain)
    champion, etag = registry.champion()
    champion_metrics = registry.manifest(champion["round"]).metrics if champion else None
    try:
        decision, reason = promotion_decision(
            registry.manifest(round_number).metrics, champion_metrics, rule=config.registry.promote_rule,
            margin=config.registry.promote_margin, max_suite_regression=config.registry.max_suite_regression,
        )
    except GateInputError as error:
        where = f"{config.registry_url}/{round_prefix(round_number)}{MANIFEST}"
        raise ApoError(f"round {round_number} vs champion round {champion['round']}: {error} ({where})") from None
    gain = paired_gain(candidate_metrics, champion_metrics)
    if decision:
        registry.set_champion(round_number, action="promote", who=who, reason=reason, expected_etag=etag)
        return PromotionOutcome(True, reason, round_number, gain)
    registry.record_rejection(round_number, who=who, reason=reason)
    return PromotionOutcome(False, reason, champion["round"], gain)


def round_summary(config: ApoConfig, round_number: int, *, version: DatasetVersion, metrics: dict,
                  outcome: PromotionOutcome, collection: dict | None, label_counts: dict) -> dict:
    """The row of the per-round table (and of the report), saved as round.json.

    Paired gains (unperturbed, validation seeds): against the champion the round was
    compared with, and against round 0 (what the loop has learnt so far).
    """
    round0 = registry_for(config).manifest(0).metrics if round_number > 0 else None
    summary = {
        "round": round_number,
        "success_rate": metrics["success_rate"],
        "ci95_low": metrics["ci95_low"],
        "ci95_high": metrics["ci95_high"],
        "suites": metrics.get("suites", {}),
        "takeovers_per_episode": None if collection is None else collection["takeovers_per_episode"],
        "human_step_share": None if collection is None else collection["human_step_share"],
        "collection_success_rate": None if collection is None else collection["success_rate"],
        "gain_vs_champion": outcome.gain,
        "gain_vs_round0": paired_gain(metrics, round0),
        "promoted": outcome.promoted,
        "promotion_reason": outcome.reason,
        "champion_round": outcome.champion_round,
        "dataset_md5": version.md5,
        "dataset_tag": version.tag,
        "label_counts": label_counts,
    }
    path = round_dir(config, round_number) / "round.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary


def rollback(config: ApoConfig, round_number: int, reason: str, who: str) -> DatasetVersion | None:
    """Re-point the champion to round N with its dataset version checked out: all or nothing.

    Round N's files are re-hashed, its dataset tag checked against the commit and md5 its
    manifest records, and the version restored file by file verified, beside the current
    one; only then does the champion move (one audit entry). If it cannot move, the
    previous dataset is put back as it was. Works when the champion pointer is corrupt:
    that is how it is repaired.
    """
    registry = registry_for(config)
    try:
        registry.complete_pending_move()  # a crash between an entry and its move: finish it first
    except CorruptPointer:
        pass  # the rollback below is the repair
    manifest = registry.verify(round_number)
    tag = manifest.dataset.get("git_tag")

    def move_champion() -> None:
        registry.set_champion(round_number, action="rollback", who=who, reason=reason)

    if not tag:
        move_champion()
        return None
    return checkout_round(workspace_for(config), int(tag.rsplit("-", 1)[1]), md5=manifest.dataset.get("md5"),
                          commit=manifest.dataset.get("git_commit"),
                          recorded_in=f"{config.registry_url}/{round_prefix(round_number)}{MANIFEST}",
                          then=move_champion)
