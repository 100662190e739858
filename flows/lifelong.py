"""The lifelong-learning loop as Prefect flows (APO_SPEC.md §1, the paper's loop figure).

    bootstrap:       expert demos -> dataset 0 -> behaviour cloning -> evaluate -> promote
    lifelong_round:  deploy champion -> collect 20 interactions (human takes over) -> label +
                     version dataset -> APO update (reference = champion) -> evaluate ->
                     publish -> promote if better -> report
    lifelong:        bootstrap if needed, then N rounds
    rollback:        re-point the champion to an earlier round and check out its dataset
"""

from __future__ import annotations

from prefect import flow

from apo_core import loop, report
from apo_core.config import ApoConfig, load_config
from tasks import round_tasks as steps


def _config(config_path: str | None, workdir: str | None) -> ApoConfig:
    return load_config(config_path, {"paths": {"workdir": workdir}} if workdir else None)


def say(message: str) -> None:
    """Progress for the person at the terminal (Prefect's own logs stay at WARNING there)."""
    print(message, flush=True)


@flow(name="bootstrap")
def bootstrap(config_path: str | None = None, workdir: str | None = None) -> dict:
    config = _config(config_path, workdir)
    tasks = loop.loop_tasks(config)
    for task_name in tasks:
        steps.record_demonstrations(config, task_name)
    say(f"bootstrap: {config.collect.expert_demos_per_task} expert demonstrations per task on {tasks}")
    version, lineage = steps.version_dataset(config, 0, tasks)
    say(f"bootstrap: dataset {version.tag} (md5 {version.md5})")
    model_dir = steps.train_round(config, 0, tasks, "bc", None)
    say(f"bootstrap: behaviour cloning done ({config.train.bc_steps} steps); evaluating")
    metrics = steps.evaluate_round(config, 0, model_dir, tasks)
    steps.publish_round(config, 0, model_dir, None, "bc", version, metrics)
    outcome = steps.promote_if_better(config, 0)
    summary = loop.round_summary(config, 0, version=version, metrics=metrics, outcome=outcome, collection=None,
                                 label_counts=lineage["label_counts"])
    steps.publish_report(config, summary, lineage)
    say(f"bootstrap: round 0 success {metrics['success_rate']:.0%}, promoted={outcome.promoted}")
    return summary


@flow(name="lifelong-round")
def lifelong_round(config_path: str | None = None, workdir: str | None = None, method: str = "apo",
                   round_number: int | None = None) -> dict:
    config = _config(config_path, workdir)
    tasks = loop.loop_tasks(config)
    number = round_number or loop.next_round(config)
    champion_round, champion_dir = steps.deploy_champion(config)
    say(f"round {number}: deployed champion round {champion_round}; collecting with the simulated human")
    collection = {}
    for task_name in tasks:
        collection = steps.collect_interactions(config, number, champion_round, champion_dir, task_name)
    say(f"round {number}: {collection['episodes']} episodes, {collection['takeovers_per_episode']:.2f} "
        f"takeovers/episode, human-step share {collection['human_step_share']:.0%}")
    version, lineage = steps.version_dataset(config, number, tasks)
    say(f"round {number}: dataset {version.tag} (md5 {version.md5}); {method} update")
    model_dir = steps.train_round(config, number, tasks, method, champion_dir)
    say(f"round {number}: evaluating")
    metrics = steps.evaluate_round(config, number, model_dir, tasks)
    steps.publish_round(config, number, model_dir, champion_round, method, version, metrics)
    outcome = steps.promote_if_better(config, number)
    summary = loop.round_summary(config, number, version=version, metrics=metrics, outcome=outcome,
                                 collection=collection, label_counts=lineage["label_counts"])
    steps.publish_report(config, summary, lineage)
    say(f"round {number}: success {summary['success_rate']:.0%}, paired gain vs round 0 "
        f"{report.gain_text(summary['gain_vs_round0'])}; promoted={summary['promoted']} ({summary['promotion_reason']})")
    return summary


@flow(name="lifelong")
def lifelong(config_path: str | None = None, workdir: str | None = None, rounds: int = 3,
             method: str = "apo") -> list[dict]:
    config = _config(config_path, workdir)
    champion, _ = loop.registry_for(config).champion()
    if champion is None:
        bootstrap(config_path, workdir)
    target = loop.next_round(config) + rounds - 1
    while loop.next_round(config) <= target:
        lifelong_round(config_path, workdir, method)
    return loop.round_history(config)


@flow(name="rollback")
def rollback(round_number: int, reason: str, config_path: str | None = None, workdir: str | None = None,
             who: str = "prefect") -> str:
    config = _config(config_path, workdir)
    version = loop.rollback(config, round_number, reason, who)
    return f"champion -> round {round_number}" + (f", dataset {version.tag}" if version else "")

