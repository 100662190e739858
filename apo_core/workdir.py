"""The workdir: every path, file name and round-name rule under ``paths.workdir``, in one place.

    episodes/expert/<task>/episode-NNNNNN.parquet               demonstrations (round 0's data)
    episodes/round-NNNN/<task>/<robot>/episode-NNNNNN.parquet   round N's interactions, one directory per robot
    episodes/<collection>/<task>/                               `apo collect` outside the rounds: random,
                                                                model-<dir name> (a policy given by directory)
    rounds/round-NNNN/model/ (+ training.json)                  the learner's model and its training record
    rounds/round-NNNN/evaluation.json, round.json               its evaluation and its row of the round table
    rounds/round-NNNN/train.work/, train.progress.json          an update in progress (checkpoints, progress)
    deployed/round-NNNN/                                        a stored round downloaded for the robots
    models/<method>/                                            `apo train`'s model when no --out is given
    report/rounds.png, report/rounds.md                         the round table and plot
    locks/robot-<robot>.lock                                    one writer per robot
    reproduce/                                                  `apo reproduce`'s scratch space
    workspace/, dvc-remote/, model-store/                       the defaults of dataset.workspace, dataset.remote,
                                                                registry.url

One writer per episode directory: each robot records into its own. What is pending is read
from these files, so it survives a lost Prefect database or a killed run. This module
imports nothing of the project at run time: every layer may use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apo_core.config import ApoConfig

ROUND_PREFIX = "round-"
EPISODES = "episodes"
EXPERT_COLLECTION = "expert"  # the demonstrations' collection, also their episode ids' first part
POLICY_COLLECTION_PREFIX = "model-"  # a collection by a policy given as a directory: model-<its name>
ROUNDS = "rounds"
MODEL = "model"
TRAINING_RECORD = "training.json"  # saved beside a model's weights: what it was trained on, and how
EVALUATION = "evaluation.json"
ROUND_SUMMARY = "round.json"
TRAIN_WORK = "train.work"
TRAIN_PROGRESS = "train.progress.json"
DEPLOYED = "deployed"
MODELS = "models"
REPORT = "report"
REPORT_PLOT = "rounds.png"
REPORT_TABLE = "rounds.md"
LOCKS = "locks"
REPRODUCE = "reproduce"
WORKSPACE = "workspace"
DVC_REMOTE = "dvc-remote"
MODEL_STORE = "model-store"

# No other module of apo_core/, flows/ or tasks/ spells one of these (tests/test_structure.py):
# the file names and prefixes anywhere in a literal, the folder names (common words) in a path join.
FILE_NAMES = (ROUND_PREFIX, POLICY_COLLECTION_PREFIX, TRAINING_RECORD, EVALUATION, ROUND_SUMMARY, TRAIN_WORK,
              TRAIN_PROGRESS, REPORT_PLOT, REPORT_TABLE, DVC_REMOTE, MODEL_STORE)
FOLDER_NAMES = (EPISODES, EXPERT_COLLECTION, ROUNDS, MODEL, DEPLOYED, MODELS, REPORT, LOCKS, REPRODUCE, WORKSPACE)


# ----- round names -------------------------------------------------------------------------
def round_name(number: int) -> str:
    """``round-0003``: round N in directory and file names, episode ids and dataset tags."""
    return f"{ROUND_PREFIX}{number:04d}"


def parse_round_name(name: str) -> int | None:
    """The N of a ``round-NNNN`` name (or of a name ending in one, e.g. a dataset tag); None otherwise."""
    digits = name.rpartition(ROUND_PREFIX)[2]
    return int(digits) if ROUND_PREFIX in name and digits.isdigit() else None


# ----- episodes ----------------------------------------------------------------------------
def episodes_dir(config: ApoConfig) -> Path:
    return config.paths.workdir / EPISODES


def expert_dir(config: ApoConfig, task: str) -> Path:
    return episodes_dir(config) / EXPERT_COLLECTION / task


def interaction_dir(config: ApoConfig, number: int, task: str, robot: str) -> Path:
    """Where ``robot`` records its interactions for round N."""
    return episodes_dir(config) / round_name(number) / task / robot


def round_interaction_dirs(config: ApoConfig, number: int, tasks: list[str]) -> list[Path]:
    """Every robot's episode directory of round N, also those of robots since removed from the
    fleet; a hidden one (:func:`staging_dir`, left by a kill) is never data."""
    root = episodes_dir(config) / round_name(number)
    return sorted(d for task in tasks if (root / task).is_dir() for d in (root / task).iterdir()
                  if d.is_dir() and not d.name.startswith("."))


def staging_dir(directory: Path) -> Path:
    """Where episodes bound for ``directory`` are written first (hidden: read by nothing),
    then renamed into place in one step."""
    return directory.with_name(f".{directory.name}.staging-{os.getpid()}")


def dataset_sources(config: ApoConfig, number: int, tasks: list[str]) -> list[Path]:
    """The episode directories dataset N is built from: the demos and rounds 1..N, aggregated."""
    sources = [expert_dir(config, task) for task in tasks if expert_dir(config, task).is_dir()]
    for earlier in range(1, number + 1):
        sources += round_interaction_dirs(config, earlier, tasks)
    return sources


def policy_collection(policy: str) -> str:
    """The collection name of ``apo collect --policy`` outside the rounds: expert, random, or
    ``model-<name>`` for a policy given as a directory."""
    return policy if policy in (EXPERT_COLLECTION, "random") else f"{POLICY_COLLECTION_PREFIX}{Path(policy).resolve().name}"


def collection_dir(config: ApoConfig, collection: str, task: str) -> Path:
    return episodes_dir(config) / collection / task


def collection_dirs(config: ApoConfig, tasks: list[str], *, demonstrations_only: bool = False) -> list[Path]:
    """Every episode directory the workdir holds for ``tasks``: the demonstrations, then
    (unless ``demonstrations_only``) every round's robots and every other collection."""
    demos = [d for task in tasks if (d := expert_dir(config, task)).is_dir()]
    if demonstrations_only or not episodes_dir(config).is_dir():
        return demos
    others = []
    for collection in sorted(p for p in episodes_dir(config).iterdir() if p.is_dir()):
        if collection.name == EXPERT_COLLECTION:
            continue
        number = parse_round_name(collection.name)
        if number is not None:
            others += round_interaction_dirs(config, number, tasks)
        else:
            others += [d for task in tasks if (d := collection / task).is_dir()]
    return demos + others


# ----- the learner's rounds ----------------------------------------------------------------
def round_dir(config: ApoConfig, number: int) -> Path:
    return config.paths.workdir / ROUNDS / round_name(number)


def model_dir(config: ApoConfig, number: int) -> Path:
    return round_dir(config, number) / MODEL


def training_work_dir(config: ApoConfig, number: int) -> Path:
    """An update's checkpoints while it runs (removed once the model is saved)."""
    return round_dir(config, number) / TRAIN_WORK


def training_progress_path(config: ApoConfig, number: int) -> Path:
    """An update's progress, kept for a driver watching it run on a worker."""
    return round_dir(config, number) / TRAIN_PROGRESS


def evaluation_path(config: ApoConfig, number: int) -> Path:
    return round_dir(config, number) / EVALUATION


def summary_path(config: ApoConfig, number: int) -> Path:
    return round_dir(config, number) / ROUND_SUMMARY


def training_record_path(model: Path) -> Path:
    """The training record saved beside a model's weights."""
    return Path(model) / TRAINING_RECORD


def round_history(config: ApoConfig) -> list[dict]:
    """The summaries (round.json) of every finished round, in order."""
    pattern = f"{ROUND_PREFIX}*/{ROUND_SUMMARY}"
    return [json.loads(p.read_text()) for p in sorted((config.paths.workdir / ROUNDS).glob(pattern))]


def next_round(config: ApoConfig) -> int:
    """The pending round, worked out from the data: the first without a finished summary.
    Robots record into it; the learner trains it next."""
    finished = {h["round"] for h in round_history(config)}
    number = 1
    while number in finished:
        number += 1
    return number


# ----- the rest of the workdir -------------------------------------------------------------
def deployed_dir(config: ApoConfig, number: int) -> Path:
    return config.paths.workdir / DEPLOYED / round_name(number)


def trained_model_dir(config: ApoConfig, method: str) -> Path:
    """Where `apo train` saves a model when no --out is given."""
    return config.paths.workdir / MODELS / method


def report_plot(config: ApoConfig) -> Path:
    return config.paths.workdir / REPORT / REPORT_PLOT


def report_table(config: ApoConfig) -> Path:
    return config.paths.workdir / REPORT / REPORT_TABLE


def robot_lock_path(workdir: Path, robot: str) -> Path:
    return Path(workdir) / LOCKS / f"robot-{robot}.lock"


def reproduce_dir(config: ApoConfig) -> Path:
    return config.paths.workdir / REPRODUCE


def default_workspace(workdir: Path) -> Path:
    return Path(workdir) / WORKSPACE


def default_dvc_remote(workdir: Path) -> Path:
    return Path(workdir) / DVC_REMOTE


def default_model_store(workdir: Path) -> Path:
    return Path(workdir) / MODEL_STORE
