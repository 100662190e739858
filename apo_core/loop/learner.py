"""The learner side of one lifelong-learning round, each step idempotent and resumable.

    label + version dataset -> update (reference = the champion) -> evaluate -> publish
    round -> promote if better

(The robot side, deploy -> collect, is :mod:`apo_core.loop.robots`; the update itself,
:mod:`apo_core.loop.update`.) Every step first looks at
what is already on disk / in the stores and continues from there, so a round killed at
any point is completed by running it again: a tagged dataset is not rebuilt, training
resumes from its checkpoint, a finished model / evaluation / published round / promotion
decision is reused. Nothing here imports Prefect or Ray: ``tasks/`` wraps these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from apo_core import workdir
from apo_core.config import ApoConfig
from apo_core.data.restore import checkout_round
from apo_core.data.round_dataset import version_round, workspace_for
from apo_core.data.versioning import DatasetVersion, tagged_round
from apo_core.envs import process_env
from apo_core.errors import ApoError
from apo_core.evaluate import (
    NO_PERTURBATION,
    EvalChunk,
    EvalResult,
    chunk_envs,
    evaluation_chunks,
    merge_chunks,
    play_chunk,
)
from apo_core.policy import cached_policy, load_policy
from apo_core.policy.actor import VlaActor
from apo_core.registry.gate import GateInputError, paired_gain, promotion_decision, summarise
from apo_core.registry.records import RoundManifest
from apo_core.registry.store import MANIFEST, CorruptPointer, NotFound, model_files, registry_for, round_prefix


def build_dataset(config: ApoConfig, round_number: int, tasks: list[str], on_episode=None
                  ) -> tuple[DatasetVersion, dict]:
    version, _, record = version_round(config, round_number, workdir.dataset_sources(config, round_number, tasks),
                                       on_episode=on_episode)
    return version, record


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


def evaluate_model_on_chunk(config: ApoConfig, model_dir: Path, chunk: EvalChunk) -> EvalResult:
    """One chunk of a round's evaluation (policy alone), on this process's envs and policy copy."""
    policy = cached_policy(model_dir)
    return play_chunk(config, lambda env: VlaActor(policy, env.instruction), chunk)


def saved_evaluation(config: ApoConfig, round_number: int) -> dict | None:
    path = workdir.evaluation_path(config, round_number)
    return json.loads(path.read_text()) if path.exists() else None


def save_evaluation(config: ApoConfig, round_number: int, results: list[EvalResult]) -> dict:
    """The round's evaluation record (gate metrics + every outcome by seed), written atomically."""
    rows = [r.to_dict() for r in merge_chunks(results)]
    metrics = {**summarise(rows), "results": rows}
    path = workdir.evaluation_path(config, round_number)
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


def publish_model(config: ApoConfig, round_number: int, model: Path, *, method: str, parent_round: int | None,
                  evaluation: list[dict] | None) -> RoundManifest:
    """`apo publish`: a model trained by hand stored as round N, with round N's dataset
    version when there is one and the gate's metrics of ``evaluation`` (`apo evaluate --json`).
    A round updated from another names it: reproducing it needs that reference."""
    if method != "bc" and parent_round is None:
        raise ApoError(f"--method {method}: a round updated from another needs --parent, the round it was trained "
                       f"from (its reference)")
    _check_loadable(model)
    try:
        version = workspace_for(config).version(round_number)
        dataset = {"md5": version.md5, "git_tag": version.tag, "git_commit": version.commit}
    except ApoError:
        dataset = {}
    return registry_for(config).publish(round_number, model, parent_round=parent_round, method=method,
                                        dataset=dataset, hyperparameters=config.train.model_dump(mode="json"),
                                        metrics=summarise(evaluation) if evaluation else {})


def _check_loadable(model: Path) -> None:
    """A round must be a policy that loads from regular files: refuse an empty, partial or
    foreign directory, and one holding a link or a subdirectory (named before loading)."""
    if not model.is_dir():
        raise ApoError(f"{model}: no such model directory")
    model_files(model)
    try:
        load_policy(model)
    except FileNotFoundError as error:
        raise ApoError(str(error)) from None
    except Exception as error:  # truncated weights, a config of another model, ...
        raise ApoError(f"{model}: not a loadable policy ({type(error).__name__}: "
                       f"{str(error).splitlines()[0][:160]})") from None


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
    for event in reversed(registry.decisions()):
        if event["to_round"] == round_number and event["action"] in ("promote", "reject"):
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
        "tasks": metrics.get("tasks", {}),
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
    path = workdir.summary_path(config, round_number)
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
    return checkout_round(workspace_for(config), tagged_round(tag), md5=manifest.dataset.get("md5"),
                          commit=manifest.dataset.get("git_commit"),
                          recorded_in=f"{config.registry_url}/{round_prefix(round_number)}{MANIFEST}",
                          then=move_champion)
