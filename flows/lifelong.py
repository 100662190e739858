"""The lifelong-learning loop as Prefect flows (docs/apo.md §1, the paper's loop figure).

    bootstrap:       expert demos -> dataset 0 -> behaviour cloning -> evaluate -> promote
    collect:         one robot at work: the champion acts, a human watches and takes over;
                     episodes go to the shared store (deploy one per robot, on its own pool)
    learn:           what the fleet collected since the last round -> label + version dataset
                     -> APO update (reference = champion) -> evaluate -> publish -> promote
    lifelong-round:  the simulated fleet collects a round (every robot its share, at once),
                     then learns: the two halves chained, for the demo and scheduled runs
    lifelong:        bootstrap if needed, then N rounds
    rollback:        re-point the champion to an earlier round and check out its dataset

Each flow takes a config file and workdir (what a deployment passes) or the validated
config itself (what a parent flow passes on). The fan-out (robots, evaluation chunks, the
update) runs on Ray or in-process, as ``cluster:`` says, through one :class:`FanOut` per
flow run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from apo_core.config import ApoConfig, load_config
from apo_core.data.versioning import DatasetVersion
from apo_core.loop import report, robots
from apo_core.loop.layout import loop_tasks
from apo_core.loop.learner import round_summary
from apo_core.registry.store import registry_for
from apo_core.workdir import next_round, round_history, round_name
from tasks import robot_tasks
from tasks import round_tasks as steps
from tasks.events import announce_rollback
from tasks.fanout import FanOut, ray_cluster
from tasks.progress import say


def _config(config_path: str | None, workdir: str | None, config: ApoConfig | dict | None) -> ApoConfig:
    if isinstance(config, dict):  # as a run's parameters hold it
        return ApoConfig.model_validate(config)
    if config is not None:
        return config
    return load_config(config_path, {"paths": {"workdir": workdir}} if workdir else None)


def _pending_round(parameters: dict) -> int:
    """The round a run works on: its ``round_number`` parameter, else the pending one."""
    config = _config(parameters.get("config_path"), parameters.get("workdir"), parameters.get("config"))
    return parameters.get("round_number") or next_round(config)


def _run_name(suffix: str = "") -> str:
    """``round-0003`` (+ suffix) for the run being named (Prefect calls this as it starts)."""
    from prefect.runtime import flow_run

    return round_name(_pending_round(flow_run.parameters)) + suffix


def _collect_run_name() -> str:
    from prefect.runtime import flow_run

    return f"collect-{flow_run.parameters['robot']}-{_run_name()}"


def _rollback_run_name() -> str:
    from prefect.runtime import flow_run

    return f"rollback-to-{round_name(flow_run.parameters['round_number'])}"


@flow(name="bootstrap", flow_run_name="bootstrap")
def bootstrap(config_path: str | None = None, workdir: str | None = None, config: ApoConfig | None = None) -> dict:
    config = _config(config_path, workdir, config)
    task_names = loop_tasks(config)
    for task_name in task_names:
        robot_tasks.record_demonstrations(config, task_name)
    say(f"bootstrap: {config.collect.expert_demos_per_task} expert demonstrations per task on {task_names}")
    with FanOut(config, steps.round_warm_up(config)) as fan_out:
        version, lineage, model_dir = steps.dataset_and_update(config, fan_out, 0, task_names, "bc", None)
        say(f"bootstrap: dataset {version.tag} (md5 {version.md5}); behaviour cloning done "
            f"({config.train.bc_steps} steps); evaluating")
        metrics = steps.evaluate_round(config, fan_out, 0, model_dir, task_names)
    summary = _publish_and_decide(config, 0, model_dir, None, "bc", version, metrics, None, lineage)
    say(f"bootstrap: round 0 success {metrics['success_rate']:.0%}, promoted={summary['promoted']}")
    return summary


@flow(name="collect", flow_run_name=_collect_run_name)
def collect(robot: str, episodes: int = 20, config_path: str | None = None, workdir: str | None = None,
            config: ApoConfig | None = None) -> dict:
    """One robot of the fleet: ``episodes`` episodes per loop task with the champion of the
    moment (a promotion is picked up at the next episode), recorded to the shared store."""
    config = _config(config_path, workdir, config)
    summary: dict = {}
    for task_name in loop_tasks(config):
        summary = robot_tasks.collect_as_robot(config, robot, task_name, episodes)
        say(f"{robot}: {summary['episodes']} episodes of {task_name}, "
            f"{summary['takeovers_per_episode']:.2f} takeovers/episode")
    return summary


@flow(name="learn", flow_run_name=lambda: _run_name("-learn"))
def learn(config_path: str | None = None, workdir: str | None = None, method: str = "apo",
          round_number: int | None = None, config: ApoConfig | None = None) -> dict | None:
    """Round N from what the fleet recorded for it (and every earlier round, aggregated)."""
    config = _config(config_path, workdir, config)
    number = round_number or next_round(config)
    if robots.recorded_count(config, number, loop_tasks(config)) == 0:
        say(f"round {number}: no interactions recorded since round {number - 1}; nothing to learn")
        return None
    champion = robot_tasks.deploy_champion(config)
    with FanOut(config, steps.round_warm_up(config)) as fan_out:
        return _learn(config, fan_out, number, method, champion)


@flow(name="lifelong-round", flow_run_name=_run_name)
def lifelong_round(config_path: str | None = None, workdir: str | None = None, method: str = "apo",
                   round_number: int | None = None, config: ApoConfig | None = None) -> dict:
    """The simulated fleet collects round N (each robot its share, all at once), then learns."""
    config = _config(config_path, workdir, config)
    task_names = loop_tasks(config)
    number = round_number or next_round(config)
    champion_round, champion_dir = champion = robot_tasks.deploy_champion(config)
    say(f"round {number}: deployed champion round {champion_round} on {', '.join(config.collect.robots)}; "
        f"collecting with the simulated human")
    with FanOut(config, steps.round_warm_up(config)) as fan_out:
        collection = robot_tasks.collect_round(config, fan_out, number, champion_round, champion_dir, task_names)
        say(f"round {number}: {collection['episodes']} episodes, {collection['takeovers_per_episode']:.2f} "
            f"takeovers/episode, human-step share {collection['human_step_share']:.0%}")
        return _learn(config, fan_out, number, method, champion)


@flow(name="lifelong", flow_run_name=lambda: f"lifelong-from-{_run_name()}")
def lifelong(config_path: str | None = None, workdir: str | None = None, rounds: int = 3, method: str = "apo",
             config: ApoConfig | None = None) -> list[dict]:
    """Bootstrap if there is no champion yet, then ``rounds`` rounds, on one Ray cluster."""
    config = _config(config_path, workdir, config)
    with ray_cluster(config, steps.round_warm_up(config)):
        champion, _ = registry_for(config).champion()
        if champion is None:
            bootstrap(config=config)
        target = next_round(config) + rounds - 1
        while next_round(config) <= target:
            lifelong_round(method=method, round_number=next_round(config), config=config)
    return round_history(config)


@flow(name="rollback", flow_run_name=_rollback_run_name)
def rollback(round_number: int, reason: str, config_path: str | None = None, workdir: str | None = None,
             who: str = "prefect", config: ApoConfig | None = None) -> str:
    from apo_core.loop import learner

    config = _config(config_path, workdir, config)
    version = learner.rollback(config, round_number, reason, who)
    announce_rollback(round_number, reason, who)
    done = f"champion -> round {round_number}" + (f", dataset {version.tag}" if version else "")
    say(done)
    return done


def _learn(config: ApoConfig, fan_out: FanOut, number: int, method: str, champion: tuple[int, Path]) -> dict:
    """The learner's half of round N: label + version the dataset beside the update from
    the champion, evaluate, publish, let the gate decide."""
    task_names = loop_tasks(config)
    champion_round, champion_dir = champion
    collection = robots.collection_stats(config, number, task_names)
    say(f"round {number}: labelling and versioning the dataset; {method} update from round {champion_round}")
    version, lineage, model_dir = steps.dataset_and_update(config, fan_out, number, task_names, method, champion_dir)
    say(f"round {number}: dataset {version.tag} (md5 {version.md5}); evaluating")
    metrics = steps.evaluate_round(config, fan_out, number, model_dir, task_names)
    summary = _publish_and_decide(config, number, model_dir, champion_round, method, version, metrics, collection,
                                  lineage)
    say(f"round {number}: success {summary['success_rate']:.0%}, paired gain vs round 0 "
        f"{report.gain_text(summary['gain_vs_round0'])}; promoted={summary['promoted']} ({summary['promotion_reason']})")
    return summary


def _publish_and_decide(config: ApoConfig, number: int, model_dir: Path, parent: int | None, method: str,
                        version: DatasetVersion, metrics: dict, collection: dict | None, lineage: dict) -> dict:
    """Publish round N, let the gate decide, and record and report the round's summary."""
    steps.publish_round(config, number, model_dir, parent, method, version, metrics)
    outcome = steps.promote_if_better(config, number)
    summary = round_summary(config, number, version=version, metrics=metrics, outcome=outcome,
                            collection=collection, label_counts=lineage["label_counts"])
    steps.publish_report(config, summary, lineage, method, parent)
    return summary
