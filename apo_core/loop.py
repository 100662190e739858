"""The steps of one lifelong-learning round, each idempotent and resumable from its data.

    deploy champion -> collect (human watching) -> label + version dataset -> APO update
    -> evaluate -> publish round -> promote if better

Every step first looks at what is already on disk / in the stores and continues from there,
so a round killed at any point is completed by running it again: episodes already
recorded are kept (collection resumes at the next seed), a tagged dataset is not rebuilt,
training resumes from its checkpoint, a finished model / evaluation / published round /
promotion decision is reused. Nothing here imports Prefect: ``tasks/`` wraps these.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from apo_core.collect import CollectionSummary, collect_episodes, recorded_summary
from apo_core.config import ApoConfig, Method
from apo_core.data.round_dataset import version_round, workspace_for
from apo_core.data.steps import Steps, load_steps
from apo_core.data.versioning import DatasetVersion
from apo_core.envs import MetaWorldEnv, make_env
from apo_core.episodes import EpisodeStore
from apo_core.errors import ApoError
from apo_core.evaluate import evaluate
from apo_core.human import ScriptedExpert, SimulatedHuman
from apo_core.policy import ApoVlaPolicy
from apo_core.policy.actor import VlaActor
from apo_core.gate import GateInputError, paired_gain, promotion_decision, summarise
from apo_core.registry import MANIFEST, ModelRegistry, RegistryError, backend_for, round_prefix


def registry_for(config: ApoConfig) -> ModelRegistry:
    return ModelRegistry(backend_for(config.registry_url, config.registry.s3_endpoint_url))


def round_dir(config: ApoConfig, round_number: int) -> Path:
    return config.paths.workdir / "rounds" / f"round-{round_number:04d}"


def interaction_dir(config: ApoConfig, round_number: int, task: str) -> Path:
    return config.paths.episodes / f"round-{round_number:04d}" / task


def expert_dir(config: ApoConfig, task: str) -> Path:
    return config.paths.episodes / "expert" / task


def loop_tasks(config: ApoConfig) -> list[str]:
    """The tasks the loop runs on: the first ``loop_tasks`` of env.tasks."""
    return config.env.tasks[: config.loop_tasks]


def next_round(config: ApoConfig) -> int:
    """The pending round, worked out from the data: the first without a finished summary."""
    finished = {h["round"] for h in round_history(config)}
    number = 1
    while number in finished:
        number += 1
    return number


def collection_stats(directory: Path) -> dict:
    """Intervention statistics of every episode recorded in ``directory`` (from the data)."""
    return recorded_summary(EpisodeStore(directory)).to_dict()


# ----- steps ---------------------------------------------------------------------------
def record_demonstrations(config: ApoConfig, task: str) -> CollectionSummary:
    env = make_env(task, config.env)
    return collect_episodes(
        env, ScriptedExpert(env), None, EpisodeStore.for_writing(expert_dir(config, task)), collection="expert",
        until=config.collect.expert_demos_per_task, base_seed=config.collect.seed, source="expert",
        policy_round=None, robot_id=config.collect.robot_id, fps=config.env.fps,
    )


def deploy_champion(config: ApoConfig) -> tuple[int, Path]:
    """Download (and verify) the champion round; returns (round, local model dir)."""
    registry = registry_for(config)
    champion, _ = registry.champion()
    if champion is None:
        raise ApoError(f"{config.registry_url}: no champion yet; run the bootstrap flow first")
    local = config.paths.workdir / "deployed" / f"round-{champion['round']:04d}"
    if not (local / "model.safetensors").exists():
        partial = local.with_name(local.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        registry.download(champion["round"], partial)
        partial.rename(local)
    return champion["round"], local


def collect_interactions(config: ApoConfig, round_number: int, policy_round: int, model_dir: Path, task: str,
                         on_episode=None) -> CollectionSummary:
    """The champion acts, the simulated human takes over when needed; resumes after a crash."""
    env = make_env(task, config.env)
    actor = VlaActor(ApoVlaPolicy.from_pretrained(model_dir), env.instruction, name=f"round-{policy_round:04d}")
    human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
    return collect_episodes(
        env, actor, human, EpisodeStore.for_writing(interaction_dir(config, round_number, task)),
        collection=f"round-{round_number:04d}", until=config.collect.interactions_per_round,
        base_seed=config.collect.seed + 100_000 * round_number,
        source="interaction", policy_round=policy_round, robot_id=config.collect.robot_id, fps=config.env.fps,
        on_episode=on_episode,
    )


def dataset_sources(config: ApoConfig, round_number: int, tasks: list[str]) -> list[Path]:
    sources = [expert_dir(config, task) for task in tasks]
    for earlier in range(1, round_number + 1):
        sources += [interaction_dir(config, earlier, task) for task in tasks]
    return [d for d in sources if d.is_dir()]


def build_dataset(config: ApoConfig, round_number: int, tasks: list[str]) -> tuple[DatasetVersion, dict]:
    version, _, record = version_round(config, round_number, dataset_sources(config, round_number, tasks))
    return version, record


def train_policy(config: ApoConfig, steps: Steps, method: Method, work_dir: Path, *,
                 reference: ApoVlaPolicy | None = None, on_step=None) -> ApoVlaPolicy:
    """Round 0 by behaviour cloning from scratch (``bc``), or round k+1 by ``method`` from ``reference``.

    ``reference`` (round k) is consumed: its module receives the update.
    """
    from apo_core.train import build_policy, train_bc, train_preference

    if method == "bc":
        policy = build_policy(steps, config.policy, image_size=config.env.image_size,
                              action_dim=MetaWorldEnv.action_dim, gripper_dim=MetaWorldEnv.gripper_dim,
                              seed=config.train.seed)
        return train_bc(policy, steps, config.train, work_dir, on_step=on_step)
    if reference is None:
        raise ApoError(f"{method} needs the reference: the previous round's model")
    return train_preference(reference, steps, method, config.train, work_dir, on_step=on_step)


def train_round(config: ApoConfig, round_number: int, tasks: list[str], method: Method,
                reference_dir: Path | None, on_step=None) -> Path:
    """Train model round N on dataset round N; the result appears atomically (or not at all)."""
    model_dir = round_dir(config, round_number) / "model"
    if (model_dir / "model.safetensors").exists():
        return model_dir
    reference = ApoVlaPolicy.from_pretrained(reference_dir) if method != "bc" and reference_dir else None
    steps = load_steps(dataset_sources(config, round_number, tasks), config.labels,
                       reference.action_tokenizer if reference else None)
    work = round_dir(config, round_number) / "train.work"
    policy = train_policy(config, steps, method, work, reference=reference, on_step=on_step)
    partial = model_dir.with_name("model.partial")
    shutil.rmtree(partial, ignore_errors=True)
    policy.save_pretrained(partial)
    partial.rename(model_dir)
    shutil.rmtree(work, ignore_errors=True)
    return model_dir


def evaluate_round(config: ApoConfig, round_number: int, model_dir: Path, tasks: list[str],
                   suites: list[str] | None = None, on_episode=None) -> dict:
    """Seeded evaluation (policy alone, validation seeds) per task and suite, cached as evaluation.json.

    Default suites: unperturbed plus every perturbation suite of the config. Every
    episode's outcome is kept by seed, for the paired promote gate.
    """
    path = round_dir(config, round_number) / "evaluation.json"
    if path.exists():
        return json.loads(path.read_text())
    suites = suites or ["none", *(p.name for p in config.evaluation.perturbations)]
    policy = ApoVlaPolicy.from_pretrained(model_dir)
    results = evaluate(config, lambda env: VlaActor(policy, env.instruction), tasks=tasks, suites=suites,
                       render=policy.config.use_image, on_episode=on_episode)
    rows = [r.to_dict() for r in results]
    metrics = {**summarise(rows), "results": rows}
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
    except RegistryError:
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
    candidate_metrics = registry.manifest(round_number).metrics
    for event in reversed(registry.audit_log()):
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


def round_history(config: ApoConfig) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((config.paths.workdir / "rounds").glob("round-*/round.json"))]


def rollback(config: ApoConfig, round_number: int, reason: str, who: str) -> DatasetVersion | None:
    """Re-point the champion to round N and check its dataset version out."""
    registry = registry_for(config)
    manifest = registry.manifest(round_number)
    registry.set_champion(round_number, action="rollback", who=who, reason=reason)
    tag = manifest.dataset.get("git_tag")
    return workspace_for(config).checkout(int(tag.rsplit("-", 1)[1])) if tag else None

