"""Interactions recorded by LeRobot's own tools, taken in as a round's data.

A LeRobot v3 dataset recorded elsewhere becomes round N's interaction episodes, as if the
pipeline's own collector had recorded them: the human acted where the recording marks an
intervention (HIL-SERL's ``complementary_info.is_intervention``; ``lerobot-rollout
--strategy.type=dagger``'s ``intervention``), the policy elsewhere. Its features are mapped
onto the versioned dataset's (names by default, or a mapping file), checked at the door
(shapes, fps, finite values, metadata agreeing with the rows, episodes not already taken
in), and only then written: a recording that fails a check leaves nothing behind. The round's
dataset is then built from them like any other (labels, lineage, version).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from apo_core.config.world import ROBOT_NAME
from apo_core.errors import ApoError
from apo_core.labels import ActedBy
from apo_core.recording.episodes import Episode, EpisodeMeta
from apo_core.recording.store import EpisodeStore
from apo_core.workdir import dataset_sources, interaction_dir

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


class IngestError(ApoError):
    """The recording cannot become the round's data; nothing was written."""


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
    try:
        return json.loads((root / "meta" / "info.json").read_text())
    except (OSError, ValueError):
        raise IngestError(f"{root}: not a LeRobot v3 dataset (meta/info.json missing or unreadable); this machine "
                          f"reaches no hub: give the dataset's local directory") from None


def _column(table: pa.Table, name: str, rows: np.ndarray, where: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
    else:
        values = column.to_numpy(zero_copy_only=False).reshape(len(column), 1)
    values = values[rows]
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise IngestError(f"{where}: feature {name!r}: non-finite value at frame {row}")
    return values


def _check_features(info: dict, world: dict, mapping: FeatureMap, source: Path) -> str:
    """The recording's features against the world's (the versioned dataset's ``info.json``);
    returns the intervention feature."""
    where, features, wanted = str(source / "meta" / "info.json"), info.get("features", {}), world["features"]
    roles = {"image": (mapping.image, "observation.image"), "state": (mapping.state, "observation.state"),
             "action": (mapping.action, "action")}
    if mapping.environment_state in features:
        roles["environment_state"] = (mapping.environment_state, "observation.environment_state")
    for role, (name, ours) in roles.items():
        if name not in features:
            raise IngestError(f"{where}: no feature {name!r} for the {role} (map it with --mapping)")
        if features[name]["dtype"] == "video":
            raise IngestError(f"{where}: feature {name!r} is a video; record images (use_videos=False)")
        if tuple(features[name]["shape"]) != tuple(wanted[ours]["shape"]):
            raise IngestError(f"{where}: feature {name!r}: shape {list(features[name]['shape'])}, but the "
                              f"dataset's world expects {list(wanted[ours]['shape'])} for {ours!r} (map another "
                              f"feature with --mapping)")
    if info.get("fps") != world["fps"]:
        raise IngestError(f"{where}: fps {info.get('fps')}, but the dataset's world records at {world['fps']}")
    candidates = [mapping.intervention] if mapping.intervention else list(INTERVENTION_FEATURES)
    present = [name for name in candidates if name in features]
    if not present:
        raise IngestError(f"{where}: no intervention feature ({' or '.join(map(repr, candidates))}): without it "
                          f"nothing says where the human acted")
    return present[0]


def recording_episodes(source: Path, world: dict, mapping: FeatureMap, *, round_number: int, robot: str,
                       task: str) -> list[Episode]:
    """Every episode of the recording at ``source`` as the pipeline's episodes, checked."""
    info = _info(source)
    intervention = _check_features(info, world, mapping, source)
    shards = sorted((source / "data").glob("chunk-*/file-*.parquet"))
    table = pa.concat_tables([pq.read_table(s) for s in shards]) if shards else None
    if table is None or info.get("total_frames") != table.num_rows:
        raise IngestError(f"{source / 'meta' / 'info.json'}: total_frames {info.get('total_frames')}, but the data "
                          f"shards hold {0 if table is None else table.num_rows} rows")
    tasks = pq.read_table(source / "meta" / "tasks.parquet").to_pydict()
    task_names = dict(zip(tasks["task_index"], tasks.get("task", tasks.get("__index_level_0__", []))))
    episode_index = table.column("episode_index").to_numpy()
    env_width = world["features"]["observation.environment_state"]["shape"][0]
    episodes = []
    for number in np.unique(episode_index):
        rows = np.flatnonzero(episode_index == number)
        where = f"{source} episode {int(number)}"
        episodes.append(_episode(table, rows, where, mapping, intervention, info, task_names, env_width,
                                 round_number=round_number, robot=robot, task=task, index=len(episodes)))
    if not episodes:
        raise IngestError(f"{source}: the recording holds no episodes")
    return episodes


def _images(table: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    from PIL import Image

    column = table.column(name).combine_chunks().field("bytes").to_pylist()
    return np.stack([np.asarray(Image.open(io.BytesIO(column[r])).convert("RGB")) for r in rows])


def _episode(table, rows, where, mapping, intervention, info, task_names, env_width, *, round_number, robot, task,
             index):
    actions = _column(table, mapping.action, rows, where).astype(np.float32)
    human = _column(table, intervention, rows, where)[:, 0].astype(bool)
    steps = len(rows)
    # A real robot may record no poses: zeros say "not recorded" (data.steps.poses_recorded),
    # and training leaves those steps out of the object head's loss.
    env_state = (_column(table, mapping.environment_state, rows, where) if mapping.environment_state
                 in table.column_names else np.zeros((steps, env_width)))
    successes = (_column(table, mapping.success, rows, where)[:, 0].astype(bool)
                 if mapping.success in table.column_names else np.zeros(steps, dtype=bool))
    rewards = (_column(table, mapping.reward, rows, where)[:, 0] if mapping.reward in table.column_names
               else np.zeros(steps))
    takeovers = int(human[0]) + int(np.sum(human[1:] & ~human[:-1]))
    instruction = task_names.get(int(table.column("task_index").to_numpy()[rows[0]]), task)
    meta = EpisodeMeta(
        episode_id=f"{robot}.round-{round_number:04d}.{task}.e{index:06d}", episode_index=index, task=task,
        instruction=instruction, seed=index, source="interaction", policy="recorded", policy_round=None,
        robot_id=robot, success=bool(successes[-1]), n_steps=steps, n_takeovers=takeovers,
        takeover_reasons=["recorded"] * takeovers, perturbation=None, started_at=0.0, finished_at=0.0,
        fps=int(info["fps"]), action_dim=actions.shape[1], gripper_dim=actions.shape[1] - 1)
    return Episode(meta=meta, images=_images(table, mapping.image, rows),
                   states=_column(table, mapping.state, rows, where).astype(np.float32),
                   environment_states=env_state.astype(np.float32), actions=actions,
                   policy_actions=np.where(human[:, None], np.nan, actions).astype(np.float32),  # unknown where
                   # the human acted: the recording holds what was executed
                   acted_by=np.where(human, ActedBy.HUMAN, ActedBy.POLICY).astype(np.int8),
                   rewards=rewards.astype(np.float32), successes=successes,
                   wall_times=np.arange(steps, dtype=np.float64) / float(info["fps"]))


def write_episodes(episodes: list[Episode], directory: Path) -> Path:
    """Write the episodes into a fresh directory, all or nothing."""
    if directory.exists() and any(directory.iterdir()):
        raise IngestError(f"{directory}: already holds episodes; ingest each recording once (another --robot name "
                          f"for another recording)")
    staging = directory.with_name(directory.name + f".ingest-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    store = EpisodeStore.for_writing(staging)
    for episode in episodes:
        store.write(episode)
    staging.parent.mkdir(parents=True, exist_ok=True)
    if directory.exists():
        directory.rmdir()
    staging.rename(directory)
    return directory


def ingest(config, source: Path, round_number: int, *, robot: str, task: str, mapping: FeatureMap):
    """Take the recording at ``source`` in as round N's interactions of ``robot`` and build
    round N's dataset; returns (version, summary, lineage) as the dataset step does."""
    from apo_core.data.round_dataset import version_round, workspace_for

    if not ROBOT_NAME.match(robot):
        raise IngestError(f"--robot {robot!r}: a robot name is letters, digits, '-' or '_' (it names a directory)")
    world_info = workspace_for(config).dataset_root / "meta" / "info.json"
    if not world_info.exists():
        raise IngestError(f"{world_info}: no versioned dataset yet to add round {round_number} to: build round 0 "
                          f"first (apo dataset build 0, or apo demo)")
    world = json.loads(world_info.read_text())
    episodes = recording_episodes(Path(source), world, mapping, round_number=round_number, robot=robot, task=task)
    directory = write_episodes(episodes, interaction_dir(config, round_number, task, robot))
    try:
        return version_round(config, round_number, dataset_sources(config, round_number, [task]), resume=False)
    except ApoError:
        shutil.rmtree(directory, ignore_errors=True)  # the round's dataset refused them: take nothing in
        raise
