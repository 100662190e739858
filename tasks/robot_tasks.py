"""The robot side as Prefect tasks: demonstrations, deployment, collection per robot.

The logic (and its resume-from-data behaviour) lives in :mod:`apo_core.loop.robots`; here:
retries where I/O can fail, one ``episode.collected`` event per episode with the robot as
its resource (the learner's trigger counts them), progress, and the fan-out of a round's
collection over the fleet (each robot's share is one task on :class:`tasks.fanout.FanOut`).
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path

from prefect import task

from apo_core.config import ApoConfig
from apo_core.loop import robots
from apo_core.recording.collector import CollectionSummary
from tasks import IO_RETRIES, STEP
from tasks.events import announce, flush_events
from tasks.fanout import FanOut
from tasks.progress import StepProgress


@task(name="record-demonstrations", **STEP)
def record_demonstrations(config: ApoConfig, task_name: str) -> int:
    progress = StepProgress(f"bootstrap: demonstrations of {task_name}", config.collect.expert_demos_per_task,
                            "episodes")
    done: list[bool] = []

    def on_episode(episode, _path) -> None:
        done.append(episode.meta.success)
        progress.update(len(done), success=f"{sum(done) / len(done):.0%}")

    summary = robots.record_demonstrations(config, task_name, on_episode=on_episode)
    progress.close()
    return summary.episodes


@task(name="deploy-champion", **STEP, **IO_RETRIES)
def deploy_champion(config: ApoConfig) -> tuple[int, Path]:
    return robots.deploy_champion(config)


@task(name="collect-interactions", **STEP)
def collect_interactions(config: ApoConfig, round_number: int, policy_round: int, model_dir: Path,
                         task_names: list[str], robot: str) -> dict:
    """One robot's share of round N, task after task: a robot is one writer (its lock,
    apo_core/recording/locks.py), so its tasks are never collected at once. Resumes from
    its episodes on disk."""
    summaries = [_collect_task(config, round_number, policy_round, model_dir, task_name, robot)
                 for task_name in task_names]
    return reduce(CollectionSummary.merged, summaries).to_dict()


def _collect_task(config: ApoConfig, round_number: int, policy_round: int, model_dir: Path, task_name: str,
                  robot: str) -> CollectionSummary:
    total = config.collect.robot_share(robot)
    progress = StepProgress(f"round {round_number}: {robot} collects {task_name}", total, "episodes")
    counts = {"done": 0, "takeovers": 0, "successes": 0}

    def on_episode(episode, _path) -> None:
        announce(episode)
        counts["done"] += 1
        counts["takeovers"] += episode.meta.n_takeovers
        counts["successes"] += int(episode.meta.success)
        progress.update(counts["done"], takeovers=str(counts["takeovers"]),
                        success=f"{counts['successes'] / counts['done']:.0%}")

    try:
        summary = robots.collect_interactions(config, round_number, policy_round, model_dir, task_name, robot,
                                              on_episode=on_episode)
    finally:
        flush_events()
    progress.close()
    return summary


@task(name="collect-as-robot", **STEP)
def collect_as_robot(config: ApoConfig, robot: str, task_name: str, episodes: int) -> dict:
    """A robot at work: ``episodes`` episodes with whichever round is champion at each."""
    progress = StepProgress(f"{robot}: collect {task_name}", episodes, "episodes")
    done = []

    def on_episode(episode, _path) -> None:
        announce(episode)
        done.append(episode.meta.success)
        progress.update(len(done), success=f"{sum(done) / len(done):.0%}")

    try:
        summary = robots.collect_as_robot(config, robot, task_name, episodes, on_episode=on_episode)
    finally:
        flush_events()
    progress.close()
    return summary.to_dict()


def collect_round(config: ApoConfig, fan_out: FanOut, round_number: int, policy_round: int, model_dir: Path,
                  task_names: list[str]) -> dict:
    """Every robot of the fleet collects its share of round N at once; the round's statistics.

    With Ray each robot is a task on its own worker (its own env and EGL context) and the
    progress shown here is read from the episodes arriving in the store.
    """
    calls = [dict(config=config, round_number=round_number, policy_round=policy_round, model_dir=model_dir,
                  task_names=task_names, robot=robot) for robot in config.collect.robots]
    if not fan_out.parallel:  # each robot's task shows its own progress
        fan_out.map(collect_interactions, calls)
        return robots.collection_stats(config, round_number, task_names)
    progress = StepProgress(f"round {round_number}: {len(config.collect.robots)} robots collect",
                            len(task_names) * config.collect.interactions_per_round, "episodes")
    fan_out.map(collect_interactions, calls,
              on_tick=lambda: progress.update(robots.recorded_count(config, round_number, task_names)))
    progress.close()
    return robots.collection_stats(config, round_number, task_names)
