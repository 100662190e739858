"""Interactions recorded by LeRobot's own tools, taken in as a round's data.

A LeRobot v3 dataset recorded elsewhere becomes round N's interaction episodes, as if the
pipeline's own collector had recorded them: the human acted where the recording marks an
intervention (HIL-SERL's ``complementary_info.is_intervention``; ``lerobot-rollout
--strategy.type=dagger``'s ``intervention``), the policy elsewhere. Its features are mapped
onto the versioned dataset's (names by default, or a mapping file) and the whole recording
is checked at the door (apo_core/data/ingest_checks.py) before anything is written: a
recording that fails a check leaves nothing behind, not even a directory. The round's
dataset is then built from them like any other (labels, lineage, version); if that build
fails, the episodes written for it are removed again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from apo_core.config.world import ROBOT_NAME
from apo_core.data.ingest_checks import (
    ACTION_BOUNDS,
    IngestError,
    RecordingData,
    check_actions,
    check_counts,
    check_new,
    check_statistics,
    episode_rows,
    flags,
    images,
    numbers,
    read_data,
    read_parquet,
)
from apo_core.labels import ActedBy
from apo_core.recording.episodes import Episode, EpisodeMeta
from apo_core.recording.store import EpisodeStore
from apo_core.workdir import dataset_sources, interaction_dir, staging_dir

if TYPE_CHECKING:
    from apo_core.data.versioning import DatasetWorkspace

INTERVENTION_FEATURES = ("complementary_info.is_intervention", "intervention")


@dataclass(frozen=True)
class FeatureMap:
    """Which feature of the recording holds each of the world's (a mapping file's keys)."""

    image: str = "observation.image"
    state: str = "observation.state"
    environment_state: str | None = "observation.environment_state"
    action: str = "action"
    intervention: str | None = None  # None: the first of INTERVENTION_FEATURES present
    reward: str | None = "next.reward"
    success: str | None = "next.success"


@dataclass(frozen=True)
class World:
    """What a recording must fit: the versioned dataset it joins (its root, whose
    ``meta/info.json`` holds the features and fps), the image side the policy sees
    (``env.image_size``) and the bound of every action dim."""

    dataset_root: Path
    info: dict
    image_size: int
    action_bound: float


@dataclass(frozen=True)
class _Recording:
    """A recording read and checked as a whole, and how its features are read."""

    source: Path
    info: dict
    data: RecordingData
    mapping: FeatureMap
    intervention: str
    task_names: dict


def read_mapping(path: Path | None) -> FeatureMap:
    if path is None:
        return FeatureMap()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return FeatureMap(**raw)
    except (OSError, yaml.YAMLError, TypeError) as error:
        raise IngestError(f"{path}: not a feature mapping ({str(error).splitlines()[0]}); expected keys "
                          f"{list(FeatureMap.__dataclass_fields__)}") from None


def _info(root: Path) -> dict:
    """The recording's ``meta/info.json``, each declared feature a dtype and a shape."""
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        raise IngestError(f"{root}: not a LeRobot v3 dataset (meta/info.json missing or unreadable); this machine "
                          f"reaches no hub: give the dataset's local directory") from None
    features = info.get("features") if isinstance(info, dict) else None
    if not isinstance(features, dict):
        raise IngestError(f"{path}: no 'features' object: not a LeRobot v3 dataset")
    for name, feature in features.items():
        if not (isinstance(feature, dict) and isinstance(feature.get("dtype"), str)
                and isinstance(feature.get("shape"), list) and feature["shape"]
                and all(isinstance(n, int) and n > 0 for n in feature["shape"])):
            raise IngestError(f"{path}: feature {name!r}: expected a 'dtype' and a 'shape' of positive sizes, got "
                              f"{feature!r}")
    return info


def _check_features(info: dict, world: World, mapping: FeatureMap, source: Path) -> str:
    """The recording's declared features against the world's; returns the intervention feature."""
    where, features, wanted = str(source / "meta" / "info.json"), info["features"], world.info["features"]
    roles = {"image": (mapping.image, "observation.image"), "state": (mapping.state, "observation.state"),
             "action": (mapping.action, "action")}
    if mapping.environment_state in features:
        roles["environment_state"] = (mapping.environment_state, "observation.environment_state")
    for role, (name, ours) in roles.items():
        if name not in features:
            raise IngestError(f"{where}: no feature {name!r} for the {role} (map it with --mapping)")
        if features[name]["dtype"] == "video":
            raise IngestError(f"{where}: feature {name!r} is a video; record images (use_videos=False)")
        if role == "image" and features[name]["dtype"] != "image":
            raise IngestError(f"{where}: feature {name!r}: dtype {features[name]['dtype']!r}, but the {role} is an "
                              f"'image' (map another feature with --mapping)")
        if tuple(features[name]["shape"]) != tuple(wanted[ours]["shape"]):
            raise IngestError(f"{where}: feature {name!r}: shape {list(features[name]['shape'])}, but the "
                              f"dataset's world expects {list(wanted[ours]['shape'])} for {ours!r} (map another "
                              f"feature with --mapping)")
    needed = [world.image_size, world.image_size, 3]
    if list(features[mapping.image]["shape"]) != needed:
        raise IngestError(f"{where}: feature {mapping.image!r}: shape {list(features[mapping.image]['shape'])}, but "
                          f"the policy sees {needed} images (env.image_size {world.image_size})")
    if info.get("fps") != world.info["fps"]:
        raise IngestError(f"{where}: fps {info.get('fps')}, but the dataset's world records at {world.info['fps']}")
    candidates = [mapping.intervention] if mapping.intervention else list(INTERVENTION_FEATURES)
    present = [name for name in candidates if name in features]
    if not present:
        raise IngestError(f"{where}: no intervention feature ({' or '.join(map(repr, candidates))}): without it "
                          f"nothing says where the human acted")
    for name in (present[0], mapping.success, mapping.reward):
        if name in features and features[name]["shape"] != [1]:
            raise IngestError(f"{where}: feature {name!r}: shape {features[name]['shape']}, expected [1] (one value "
                              f"per frame)")
    return present[0]


def recording_episodes(source: Path, world: World, mapping: FeatureMap, *, round_number: int, robot: str,
                       task: str) -> list[Episode]:
    """Every episode of the recording at ``source`` as the pipeline's episodes, all checked
    (none of them already in the world's dataset)."""
    info = _info(source)
    intervention = _check_features(info, world, mapping, source)
    data = read_data(source, info["features"])
    if info.get("total_frames") != data.table.num_rows:
        raise IngestError(f"{source / 'meta' / 'info.json'}: total_frames {info.get('total_frames')}, but the data "
                          f"files hold {data.table.num_rows} rows")
    rows = episode_rows(data)
    if not rows:
        raise IngestError(f"{source}: the recording holds no episodes")
    check_counts(source, info, rows)
    tasks = read_parquet(source / "meta" / "tasks.parquet", "tasks metadata").to_pydict()
    task_names = dict(zip(tasks.get("task_index", []), tasks.get("task", tasks.get("__index_level_0__", []))))
    recording = _Recording(source, info, data, mapping, intervention, task_names)
    episodes = {number: _episode(recording, world, number, held, index, round_number=round_number, robot=robot,
                                 task=task) for index, (number, held) in enumerate(rows.items())}
    check_new(source, data, rows, episodes, world.dataset_root)
    return list(episodes.values())


def _episode(recording: _Recording, world: World, number: int, rows: np.ndarray, index: int, *, round_number: int,
             robot: str, task: str) -> Episode:
    table, mapping, declared = recording.data.table, recording.mapping, recording.info["features"]
    where, steps = f"{recording.source} episode {number}", len(rows)
    actions = numbers(table, mapping.action, rows, where)
    check_actions(actions, mapping.action, world.action_bound, where)
    human = flags(table, recording.intervention, rows, where)
    states = numbers(table, mapping.state, rows, where)
    # A real robot may record no poses: zeros say "not recorded" (data.steps.poses_recorded),
    # and training leaves those steps out of the object head's loss.
    env_width = world.info["features"]["observation.environment_state"]["shape"][0]
    env_state = (numbers(table, mapping.environment_state, rows, where) if mapping.environment_state in declared
                 else np.zeros((steps, env_width)))
    successes = flags(table, mapping.success, rows, where) if mapping.success in declared else np.zeros(steps, bool)
    rewards = numbers(table, mapping.reward, rows, where)[:, 0] if mapping.reward in declared else np.zeros(steps)
    for name, values in ((mapping.state, states), (mapping.environment_state, env_state), (mapping.reward, rewards)):
        check_statistics(values, name, where)
    takeovers = int(human[0]) + int(np.sum(human[1:] & ~human[:-1]))
    instruction = str(recording.task_names.get(int(table.column("task_index").to_numpy()[rows[0]]), task))
    fps = int(recording.info["fps"])
    meta = EpisodeMeta(
        episode_id=f"{robot}.round-{round_number:04d}.{task}.e{index:06d}", episode_index=index, task=task,
        instruction=instruction, seed=index, source="interaction", policy="recorded", policy_round=None,
        robot_id=robot, success=bool(successes[-1]), n_steps=steps, n_takeovers=takeovers,
        takeover_reasons=["recorded"] * takeovers, perturbation=None, started_at=0.0, finished_at=0.0,
        fps=fps, action_dim=actions.shape[1], gripper_dim=actions.shape[1] - 1)
    actions = actions.astype(np.float32)
    return Episode(meta=meta, images=images(table, mapping.image, rows, declared[mapping.image]["shape"], where),
                   states=states.astype(np.float32), environment_states=env_state.astype(np.float32),
                   actions=actions,
                   policy_actions=np.where(human[:, None], np.nan, actions).astype(np.float32),  # unknown where
                   # the human acted: the recording holds what was executed
                   acted_by=np.where(human, ActedBy.HUMAN, ActedBy.POLICY).astype(np.int8),
                   rewards=rewards.astype(np.float32), successes=successes,
                   wall_times=np.arange(steps, dtype=np.float64) / float(fps))


def _new_directories(directory: Path) -> list[Path]:
    """``directory`` and those above it that do not exist yet, deepest first."""
    missing = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def _take_back(directory: Path, created: list[Path]) -> None:
    """Remove what an ingest wrote into ``directory``, and the directories it created."""
    shutil.rmtree(directory, ignore_errors=True)
    if directory not in created:
        directory.mkdir()  # it was there, empty, before
    for path in created[1:]:
        try:
            path.rmdir()
        except OSError:
            break  # another writer put something there meanwhile: keep it


def write_episodes(episodes: list[Episode], directory: Path) -> list[Path]:
    """Write the episodes into ``directory`` (missing or empty), all or nothing; returns the
    directories this created (deepest first), for :func:`_take_back`."""
    created = _new_directories(directory)
    staging = staging_dir(directory)
    try:
        store = EpisodeStore.for_writing(staging)
        for episode in episodes:
            store.write(episode)
        if directory.exists():
            directory.rmdir()
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _take_back(directory, created)
        raise
    return created


def _check_destination(workspace: DatasetWorkspace, round_number: int, directory: Path) -> None:
    """Round N is the next dataset round, and ``robot`` has no episodes in it yet."""
    tagged = [version.round for version in workspace.versions()]
    expected = max(tagged, default=-1) + 1
    if round_number != expected:
        raise IngestError(f"--round {round_number}: the next dataset round is {expected} (rounds are versioned in "
                          f"order; a versioned round is never rebuilt)")
    if directory.exists() and any(directory.iterdir()):
        raise IngestError(f"{directory}: already holds episodes; ingest each recording once (another --robot name "
                          f"for another recording)")


def ingest(config, source: Path, round_number: int, *, robot: str, task: str, mapping: FeatureMap):
    """Take the recording at ``source`` in as round N's interactions of ``robot`` and build
    round N's dataset; returns (version, summary, lineage) as the dataset step does."""
    from apo_core.data.round_dataset import version_round, workspace_for

    if not ROBOT_NAME.match(robot):
        raise IngestError(f"--robot {robot!r}: a robot name is letters, digits, '-' or '_' (it names a directory)")
    workspace = workspace_for(config)
    world_info = workspace.dataset_root / "meta" / "info.json"
    if not world_info.exists():
        raise IngestError(f"{world_info}: no versioned dataset yet to add round {round_number} to: build round 0 "
                          f"first (apo dataset build 0, or apo demo)")
    world = World(workspace.dataset_root, json.loads(world_info.read_text()), config.env.image_size,
                  ACTION_BOUNDS[config.env.world])
    directory = interaction_dir(config, round_number, task, robot)
    _check_destination(workspace, round_number, directory)
    episodes = recording_episodes(Path(source), world, mapping, round_number=round_number, robot=robot, task=task)
    created = write_episodes(episodes, directory)
    try:
        return version_round(config, round_number, dataset_sources(config, round_number, [task]), resume=False)
    except BaseException:
        _take_back(directory, created)  # the round's dataset refused them: take nothing in
        raise
