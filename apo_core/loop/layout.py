"""Where the loop keeps things under ``paths.workdir``, and what the data says is pending.

    episodes/expert/<task>/episode-NNNNNN.parquet                  demonstrations
    episodes/round-NNNN/<task>/<robot>/episode-NNNNNN.parquet      round N's interactions, per robot
    rounds/round-NNNN/                                             the learner's model, evaluation, summary

One writer per episode directory: each robot records into its own. Everything here is
read from the files, so it survives a lost Prefect database or a killed run.
"""

from __future__ import annotations

import json
from pathlib import Path

from apo_core.config import ApoConfig
from apo_core.rounds import round_name


def round_dir(config: ApoConfig, round_number: int) -> Path:
    return config.paths.workdir / "rounds" / round_name(round_number)


def expert_dir(config: ApoConfig, task: str) -> Path:
    return config.paths.episodes / "expert" / task


def interaction_dir(config: ApoConfig, round_number: int, task: str, robot: str) -> Path:
    """Where ``robot`` records its interactions for round N."""
    return config.paths.episodes / round_name(round_number) / task / robot


def round_interaction_dirs(config: ApoConfig, round_number: int, tasks: list[str]) -> list[Path]:
    """Every robot's episode directory of round N, also those of robots since removed from the fleet."""
    root = config.paths.episodes / round_name(round_number)
    return sorted(d for task in tasks if (root / task).is_dir() for d in (root / task).iterdir() if d.is_dir())


def dataset_sources(config: ApoConfig, round_number: int, tasks: list[str]) -> list[Path]:
    """The episode directories dataset N is built from: the demos and rounds 1..N, aggregated."""
    sources = [expert_dir(config, task) for task in tasks if expert_dir(config, task).is_dir()]
    for earlier in range(1, round_number + 1):
        sources += round_interaction_dirs(config, earlier, tasks)
    return sources


def loop_tasks(config: ApoConfig) -> list[str]:
    """The tasks the loop runs on: the first ``loop_tasks`` of env.tasks."""
    return config.env.tasks[: config.loop_tasks]


def round_history(config: ApoConfig) -> list[dict]:
    """The summaries (round.json) of every finished round, in order."""
    return [json.loads(p.read_text()) for p in sorted((config.paths.workdir / "rounds").glob("round-*/round.json"))]


def next_round(config: ApoConfig) -> int:
    """The pending round, worked out from the data: the first without a finished summary.
    Robots record into it; the learner trains it next."""
    finished = {h["round"] for h in round_history(config)}
    number = 1
    while number in finished:
        number += 1
    return number
