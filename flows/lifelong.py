"""The lifelong-learning loop as Prefect flows (APO_SPEC.md §1, the paper's loop figure).

    bootstrap:       expert demos -> dataset 0 -> behaviour cloning -> evaluate -> promote
    collect:         one robot at work: the champion acts, a human watches and takes over;
                     episodes go to the shared store (deploy one per robot, on its own pool)
    learn:           what the fleet collected since the last round -> label + version dataset
                     -> APO update (reference = champion) -> evaluate -> publish -> promote
    lifelong-round:  the simulated fleet collects a round (every robot its share, at once),
                     then learn: the two halves chained, for the demo and scheduled runs
    lifelong:        bootstrap if needed, then N rounds
    rollback:        re-point the champion to an earlier round and check out its dataset

The fan-out (robots, evaluation chunks) runs on Ray or in-process, as ``cluster:`` says.
"""

from __future__ import annotations

from prefect import flow

from apo_core import report, robots
from apo_core.config import ApoConfig, load_config
from apo_core.layout import loop_tasks, next_round, round_history
from apo_core.loop import round_summary
from apo_core.registry import registry_for
from tasks import robot_tasks
from tasks import round_tasks as steps
from tasks.fleet import Fleet, ray_cluster


def _config(config_path: str | None, workdir: str | None) -> ApoConfig:
    return load_config(config_path, {"paths": {"workdir": workdir}} if workdir else None)


def say(message: str) -> None:
    """Progress for the person at the terminal (Prefect's own logs stay at WARNING there)."""
    print(message, flush=True)


@flow(name="bootstrap")
def bootstrap(config_path: str | None = None, workdir: str | None = None) -> dict:
    config = _config(config_path, workdir)
    tasks = loop_tasks(config)
    for task_name in tasks:
        robot_tasks.record_demonstrations(config, task_name)
    say(f"bootstrap: {config.collect.expert_demos_per_task} expert demonstrations per task on {tasks}")
    with ray_cluster(config), Fleet(config) as fleet:
        version, lineage, model_dir = steps.dataset_and_update(config, fleet, 0, tasks, "bc", None)
        say(f"bootstrap: dataset {version.tag} (md5 {version.md5}); behaviour cloning done "
            f"({config.train.bc_steps} steps); evaluating")
        metrics = steps.evaluate_round(config, fleet, 0, model_dir, tasks)
    summary = _publish_and_decide(config, 0, model_dir, None, "bc", version, metrics, None, lineage)
    say(f"bootstrap: round 0 success {metrics['success_rate']:.0%}, promoted={summary['promoted']}")
    return summary


def _publish_and_decide(config: ApoConfig, number: int, model_dir, parent: int | None, method: str, version,
                        metrics: dict, collection: dict | None, lineage: dict) -> dict:
    """Publish round N, let the gate decide, and record and report the round's summary."""
    steps.publish_round(config, number, model_dir, parent, method, version, metrics)
    outcome = steps.promote_if_better(config, number)
    summary = round_summary(config, number, version=version, metrics=metrics, outcome=outcome,
                            collection=collection, label_counts=lineage["label_counts"])
    steps.publish_report(config, summary, lineage)
    return summary


@flow(name="collect")
def collect(robot: str, episodes: int = 20, config_path: str | None = None, workdir: str | None = None) -> dict:
    """One robot of the fleet: ``episodes`` episodes per loop task with the champion of the
    moment (a promotion is picked up at the next episode), recorded to the shared store."""
    config = _config(config_path, workdir)
    summary: dict = {}
    for task_name in loop_tasks(config):
        summary = robot_tasks.collect_as_robot(config, robot, task_name, episodes)
        say(f"{robot}: {summary['episodes']} episodes of {task_name}, "
            f"{summary['takeovers_per_episode']:.2f} takeovers/episode")
    return summary


@flow(name="learn")
def learn(config_path: str | None = None, workdir: str | None = None, method: str = "apo",
          round_number: int | None = None) -> dict | None:
    """Round N from what the fleet recorded for it (and every earlier round, aggregated)."""
    config = _config(config_path, workdir)
    tasks = loop_tasks(config)
    number = round_number or next_round(config)
    if robots.recorded_count(config, number, tasks) == 0:
        say(f"round {number}: no interactions recorded since round {number - 1}; nothing to learn")
        return None
    collection = robots.collection_stats(config, number, tasks)
    champion_round, champion_dir = robot_tasks.deploy_champion(config)
    with ray_cluster(config), Fleet(config) as fleet:
        say(f"round {number}: labelling and versioning the dataset; {method} update from round {champion_round}")
        version, lineage, model_dir = steps.dataset_and_update(config, fleet, number, tasks, method, champion_dir)
        say(f"round {number}: dataset {version.tag} (md5 {version.md5}); evaluating")
        metrics = steps.evaluate_round(config, fleet, number, model_dir, tasks)
    summary = _publish_and_decide(config, number, model_dir, champion_round, method, version, metrics, collection,
                                  lineage)
    say(f"round {number}: success {summary['success_rate']:.0%}, paired gain vs round 0 "
        f"{report.gain_text(summary['gain_vs_round0'])}; promoted={summary['promoted']} ({summary['promotion_reason']})")
    return summary


@flow(name="lifelong-round")
def lifelong_round(config_path: str | None = None, workdir: str | None = None, method: str = "apo",
                   round_number: int | None = None) -> dict | None:
    """The simulated fleet collects round N (each robot its share, all at once), then learns."""
    config = _config(config_path, workdir)
    tasks = loop_tasks(config)
    number = round_number or next_round(config)
    champion_round, champion_dir = robot_tasks.deploy_champion(config)
    robots_named = ", ".join(config.collect.robots)
    say(f"round {number}: deployed champion round {champion_round} on {robots_named}; collecting with the "
        f"simulated human")
    with ray_cluster(config):
        with Fleet(config) as fleet:
            collection = robot_tasks.collect_round(config, fleet, number, champion_round, champion_dir, tasks)
        say(f"round {number}: {collection['episodes']} episodes, {collection['takeovers_per_episode']:.2f} "
            f"takeovers/episode, human-step share {collection['human_step_share']:.0%}")
        return learn(config_path, workdir, method, number)


@flow(name="lifelong")
def lifelong(config_path: str | None = None, workdir: str | None = None, rounds: int = 3,
             method: str = "apo") -> list[dict]:
    config = _config(config_path, workdir)
    with ray_cluster(config):
        champion, _ = registry_for(config).champion()
        if champion is None:
            bootstrap(config_path, workdir)
        target = next_round(config) + rounds - 1
        while next_round(config) <= target:
            lifelong_round(config_path, workdir, method)
    return round_history(config)


@flow(name="rollback")
def rollback(round_number: int, reason: str, config_path: str | None = None, workdir: str | None = None,
             who: str = "prefect") -> str:
    from apo_core import loop

    config = _config(config_path, workdir)
    version = loop.rollback(config, round_number, reason, who)
    return f"champion -> round {round_number}" + (f", dataset {version.tag}" if version else "")
