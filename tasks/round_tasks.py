"""One Prefect task per step of the round. The logic (and the resume-from-data behaviour)
lives in apo_core.loop; here: retries where I/O can fail, events, and artifacts.

No Prefect result caching is used on purpose: each step already finds its own finished
work in the data (episodes, dataset tags, model files, the registry), which survives a
lost Prefect database as well.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from apo_core import loop, report
from apo_core.config import ApoConfig
from apo_core.data.versioning import DatasetVersion
from tasks.progress import StepProgress

STEP = dict(cache_policy=NO_CACHE, persist_result=False)
IO_RETRIES = dict(retries=2, retry_delay_seconds=3)


@task(name="record-demonstrations", **STEP)
def record_demonstrations(config: ApoConfig, task_name: str) -> int:
    return loop.record_demonstrations(config, task_name).episodes


@task(name="deploy-champion", **STEP, **IO_RETRIES)
def deploy_champion(config: ApoConfig) -> tuple[int, Path]:
    return loop.deploy_champion(config)


@task(name="collect-interactions", **STEP)
def collect_interactions(config: ApoConfig, round_number: int, policy_round: int, model_dir: Path,
                         task_name: str) -> dict:
    robot = config.collect.robot_id

    def announce(episode, path):
        emit_event(
            event="episode.collected",
            resource={"prefect.resource.id": f"apo.robot.{robot}", "apo.round": str(round_number)},
            payload={"episode_id": episode.meta.episode_id, "takeovers": episode.meta.n_takeovers,
                     "success": episode.meta.success},
        )

    total = config.collect.interactions_per_round
    progress = StepProgress(f"round {round_number}: collect {task_name}", total, "episodes")
    counts = {"done": 0, "takeovers": 0, "successes": 0}

    def announce_and_count(episode, path):
        announce(episode, path)
        counts["done"] += 1
        counts["takeovers"] += episode.meta.n_takeovers
        counts["successes"] += int(episode.meta.success)
        progress.update(counts["done"], takeovers=str(counts["takeovers"]),
                        success=f"{counts['successes'] / counts['done']:.0%}")

    loop.collect_interactions(config, round_number, policy_round, model_dir, task_name,
                              on_episode=announce_and_count)
    progress.close()
    return loop.collection_stats(loop.interaction_dir(config, round_number, task_name))


@task(name="label-and-version-dataset", **STEP, **IO_RETRIES)
def version_dataset(config: ApoConfig, round_number: int, tasks: list[str]) -> tuple[DatasetVersion, dict]:
    return loop.build_dataset(config, round_number, tasks)


@task(name="train-round", **STEP)
def train_round(config: ApoConfig, round_number: int, tasks: list[str], method: str,
                reference_dir: Path | None) -> Path:
    progress = StepProgress(f"round {round_number}: train {method}", None, "steps")

    def on_step(step: int, total: int, metrics: dict) -> None:
        progress.update(step, total, loss=f"{metrics['loss']:.4f}")

    model_dir = loop.train_round(config, round_number, tasks, method, reference_dir, on_step=on_step)
    progress.close()
    return model_dir


@task(name="evaluate", **STEP)
def evaluate_round(config: ApoConfig, round_number: int, model_dir: Path, tasks: list[str]) -> dict:
    suites = 1 + len(config.evaluation.perturbations)
    total = len(tasks) * (config.evaluation.episodes + (suites - 1) * config.evaluation.perturbed_episodes)
    progress = StepProgress(f"round {round_number}: evaluate", total, "episodes")
    counts = {"done": 0, "successes": 0}

    def on_episode(outcome) -> None:
        counts["done"] += 1
        counts["successes"] += int(outcome.success)
        progress.update(counts["done"], success=f"{counts['successes'] / counts['done']:.0%}")

    metrics = loop.evaluate_round(config, round_number, model_dir, tasks, on_episode=on_episode)
    progress.close()
    return metrics


@task(name="publish-round", **STEP, **IO_RETRIES)
def publish_round(config: ApoConfig, round_number: int, model_dir: Path, parent_round: int | None, method: str,
                  version: DatasetVersion, metrics: dict) -> None:
    loop.publish_round(config, round_number, model_dir, parent_round=parent_round, method=method,
                       version=version, metrics=metrics)


@task(name="promote-if-better", **STEP, **IO_RETRIES)
def promote_if_better(config: ApoConfig, round_number: int) -> loop.PromotionOutcome:
    return loop.promote_if_better(config, round_number)


@task(name="report", **STEP)
def publish_report(config: ApoConfig, summary: dict, lineage: dict) -> Path:
    history = loop.round_history(config)
    plot = report.plot(history, config.paths.workdir / "report" / "rounds.png")
    (config.paths.workdir / "report" / "rounds.md").write_text(report.markdown(history))
    create_table_artifact(key="apo-rounds", table=report.table_rows(history),
                          description="Per-round success, intervention rate, promotion and dataset version")
    new = lineage["new_episode_ids"]
    create_markdown_artifact(
        key=f"apo-round-{summary['round']:04d}",
        markdown="\n".join([
            f"# Round {summary['round']}",
            report.markdown(history),
            "",
            f"Plot: `{plot.resolve()}`",
            "",
            "## Lineage",
            f"- dataset `{lineage['git_tag']}` md5 `{lineage['dataset_md5']}` (commit `{lineage['git_commit'][:10]}`)",
            f"- {len(lineage['episodes'])} episodes in the dataset, {len(new)} new this round",
            f"- labels: {lineage['label_counts']}",
        ]),
        description="Round report and dataset lineage",
    )
    return plot
