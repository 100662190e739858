"""Recorded episodes: one Parquet file per finished episode (apo_core/recording/store.py
writes them crash-safe, several writers at once).

File contract:

* ``episode-000017.parquet``: one row per step, columns in :data:`STEP_COLUMNS`
  (LeRobot's names where LeRobot has one: ``observation.*``, ``action``,
  ``complementary_info.is_intervention``, ``next.reward``, ``next.done``), and the
  episode's metadata as JSON under the schema metadata key ``apo.episode``.
* Reading checks values as well as the schema: finite actions, states and rewards, a
  policy proposal that is either absent (NaN) or finite, complete metadata that agrees
  with the rows. A bad file is refused with its path and field named.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from apo_core.envs.base import Observation, StepOutcome
from apo_core.errors import EpisodeFormatError
from apo_core.labels import ActedBy

FORMAT_VERSION = 1
METADATA_KEY = b"apo.episode"
ACTOR_NAMES = {actor: actor.name.lower() for actor in ActedBy}
_ACTOR_BY_NAME = {name: actor for actor, name in ACTOR_NAMES.items()}

Source = Literal["expert", "interaction"]


@dataclass(frozen=True)
class EpisodeMeta:
    """Who, what and how of one episode (stored with it; the lineage reads these)."""

    episode_id: str
    episode_index: int
    task: str
    instruction: str
    seed: int
    source: Source
    policy: str
    policy_round: int | None
    robot_id: str
    success: bool
    n_steps: int
    n_takeovers: int
    takeover_reasons: list[str]
    perturbation: str | None
    started_at: float
    finished_at: float
    fps: int
    action_dim: int
    gripper_dim: int
    format_version: int = FORMAT_VERSION


@dataclass
class Episode:
    """A recorded episode: per-step arrays of equal length T plus its metadata."""

    meta: EpisodeMeta
    images: np.ndarray  # [T, H, W, 3] uint8
    states: np.ndarray  # [T, S] float32
    environment_states: np.ndarray  # [T, E] float32
    actions: np.ndarray  # [T, D] float32, the action executed
    policy_actions: np.ndarray  # [T, D] float32, the policy's proposal (NaN where none)
    acted_by: np.ndarray  # [T] int8 of ActedBy
    rewards: np.ndarray  # [T] float32
    successes: np.ndarray  # [T] bool, success after the step
    wall_times: np.ndarray  # [T] float64, unix time of the step

    @property
    def is_intervention(self) -> np.ndarray:
        return self.acted_by == ActedBy.HUMAN

    def content_sha256(self) -> str:
        """sha256 of what happened (task, seed, every step's arrays): two files with the same
        digest hold the same episode, whatever their names and ids say."""
        digest = hashlib.sha256(f"{self.meta.task}|{self.meta.seed}|{self.meta.source}".encode())
        for column in (self.states, self.environment_states, self.actions, self.policy_actions, self.acted_by,
                       self.rewards):
            digest.update(np.ascontiguousarray(column).tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.acted_by)


class RecordedStep(NamedTuple):
    observation: Observation
    action: np.ndarray
    proposal: np.ndarray  # NaN where the policy proposed nothing
    acted_by: int
    reward: float
    success: bool
    wall_time: float


@dataclass
class EpisodeRecorder:
    """Accumulates the steps of the episode being played."""

    task: str
    instruction: str
    seed: int
    started_at: float = field(default_factory=time.time)
    _steps: list[RecordedStep] = field(default_factory=list)

    def add(
        self,
        observation: Observation,
        action: np.ndarray,
        policy_action: np.ndarray | None,
        acted_by: ActedBy,
        outcome: StepOutcome,
    ) -> None:
        proposal = np.full_like(action, np.nan) if policy_action is None else policy_action
        self._steps.append(
            RecordedStep(observation, action, proposal, int(acted_by), outcome.reward, outcome.success, time.time())
        )

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def acted_by(self) -> np.ndarray:
        return np.array([step.acted_by for step in self._steps], dtype=np.int8)

    @property
    def success(self) -> bool:
        return bool(self._steps[-1].success) if self._steps else False

    @property
    def takeovers(self) -> int:
        """Human takeovers: the starts of the runs of human steps."""
        is_human = self.acted_by == ActedBy.HUMAN
        return int(np.sum(is_human & ~np.concatenate([[False], is_human[:-1]])))

    def finish(self, **meta_fields) -> Episode:
        if not self._steps:
            raise ValueError("an episode needs at least one step")
        steps = RecordedStep(*zip(*self._steps))  # column-wise: each field a tuple over the steps
        meta = EpisodeMeta(
            task=self.task,
            instruction=self.instruction,
            seed=self.seed,
            started_at=self.started_at,
            finished_at=time.time(),
            n_steps=len(self),
            n_takeovers=self.takeovers,
            action_dim=len(steps.action[0]),
            success=self.success,
            **meta_fields,
        )
        return Episode(
            meta=meta,
            images=np.stack([o.image for o in steps.observation]).astype(np.uint8),
            states=np.stack([o.state for o in steps.observation]).astype(np.float32),
            environment_states=np.stack([o.environment_state for o in steps.observation]).astype(np.float32),
            actions=np.stack(steps.action).astype(np.float32),
            policy_actions=np.stack(steps.proposal).astype(np.float32),
            acted_by=np.array(steps.acted_by, dtype=np.int8),
            rewards=np.array(steps.reward, dtype=np.float32),
            successes=np.array(steps.success, dtype=bool),
            wall_times=np.array(steps.wall_time, dtype=np.float64),
        )


def _fixed_list(values: np.ndarray, value_type: pa.DataType) -> pa.FixedSizeListArray:
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel(), type=value_type), flat.shape[1])


def episode_to_table(episode: Episode) -> pa.Table:
    meta = episode.meta
    steps = np.arange(len(episode), dtype=np.int64)
    columns = {
        "episode_index": pa.array(np.full(len(episode), meta.episode_index, dtype=np.int64)),
        "frame_index": pa.array(steps),
        "timestamp": pa.array((steps / meta.fps).astype(np.float32)),
        "wall_time": pa.array(episode.wall_times),
        "observation.image": _fixed_list(episode.images, pa.uint8()),
        "observation.state": _fixed_list(episode.states, pa.float32()),
        "observation.environment_state": _fixed_list(episode.environment_states, pa.float32()),
        "action": _fixed_list(episode.actions, pa.float32()),
        "complementary_info.policy_action": _fixed_list(episode.policy_actions, pa.float32()),
        "acted_by": pa.array([ACTOR_NAMES[ActedBy(a)] for a in episode.acted_by]).dictionary_encode(),
        "complementary_info.is_intervention": pa.array(episode.is_intervention),
        "next.reward": pa.array(episode.rewards),
        "next.success": pa.array(episode.successes),
        "next.done": pa.array(steps == len(episode) - 1),
    }
    image_shape = list(episode.images.shape[1:])
    metadata = {METADATA_KEY: json.dumps({**asdict(meta), "image_shape": image_shape}).encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


STEP_COLUMNS = (
    "episode_index",
    "frame_index",
    "timestamp",
    "wall_time",
    "observation.image",
    "observation.state",
    "observation.environment_state",
    "action",
    "complementary_info.policy_action",
    "acted_by",
    "complementary_info.is_intervention",
    "next.reward",
    "next.success",
    "next.done",
)


# One value per step: (what the column must hold, the arrow type check).
SCALAR_COLUMNS = {
    "next.reward": ("floats", pa.types.is_floating),
    "next.success": ("booleans", pa.types.is_boolean),
    "next.done": ("booleans", pa.types.is_boolean),
    "wall_time": ("floats", pa.types.is_floating),
    "episode_index": ("integers", pa.types.is_integer),
    "acted_by": ("strings", lambda kind: _is_text(kind) or pa.types.is_dictionary(kind) and _is_text(kind.value_type)),
}


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _check_scalar_types(table: pa.Table, path: Path) -> None:
    """A column of the wrong type is refused, never coerced (a string 'false' is truthy)."""
    for name, (expected, is_right) in SCALAR_COLUMNS.items():
        if name in table.column_names and not is_right(table.schema.field(name).type):
            raise EpisodeFormatError(f"{path}: column {name!r}: expected {expected}, got "
                                     f"{table.schema.field(name).type}")


def _column_values(table: pa.Table, name: str, path: Path, value_type: pa.DataType, width: int | None = None):
    column = table.column(name).combine_chunks()
    if not pa.types.is_fixed_size_list(column.type) or column.type.value_type != value_type:
        raise EpisodeFormatError(f"{path}: column {name!r}: expected fixed-size list of {value_type}, got {column.type}")
    if width is not None and column.type.list_size != width:
        raise EpisodeFormatError(f"{path}: column {name!r}: expected {width} values per step, got {column.type.list_size}")
    return column.values.to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)


def read_episode(path: str | Path) -> Episode:
    """Read and validate one episode file; :class:`EpisodeFormatError` names what is wrong."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise EpisodeFormatError(f"{path}: not a readable Parquet episode: {exc}") from None
    missing = [name for name in STEP_COLUMNS if name not in table.column_names]
    if missing:
        raise EpisodeFormatError(f"{path}: missing columns {missing}")
    _check_scalar_types(table, path)
    meta, image_shape = _read_meta(table, path)
    if table.num_rows != meta.n_steps or table.num_rows == 0:
        raise EpisodeFormatError(f"{path}: {table.num_rows} rows but metadata says n_steps={meta.n_steps}")
    actors = table.column("acted_by").to_pylist()
    unknown = sorted(set(actors) - set(_ACTOR_BY_NAME), key=str)
    if unknown:
        raise EpisodeFormatError(f"{path}: column 'acted_by': unknown values {unknown}, expected {sorted(_ACTOR_BY_NAME)}")
    if set(table.column("episode_index").to_pylist()) != {meta.episode_index}:
        raise EpisodeFormatError(f"{path}: column 'episode_index' disagrees with the metadata's {meta.episode_index}")
    images = _column_values(table, "observation.image", path, pa.uint8(), int(np.prod(image_shape)))
    episode = Episode(
        meta=meta,
        images=images.reshape(len(images), *image_shape),
        states=_column_values(table, "observation.state", path, pa.float32()),
        environment_states=_column_values(table, "observation.environment_state", path, pa.float32()),
        actions=_column_values(table, "action", path, pa.float32(), meta.action_dim),
        policy_actions=_column_values(table, "complementary_info.policy_action", path, pa.float32(), meta.action_dim),
        acted_by=np.array([_ACTOR_BY_NAME[a] for a in actors], dtype=np.int8),
        rewards=table.column("next.reward").to_numpy(zero_copy_only=False).astype(np.float32),
        successes=table.column("next.success").to_numpy(zero_copy_only=False).astype(bool),
        wall_times=table.column("wall_time").to_numpy(zero_copy_only=False).astype(np.float64),
    )
    _check_values(episode, path)
    return episode


def _read_meta(table: pa.Table, path: Path) -> tuple[EpisodeMeta, list[int]]:
    raw_meta = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw_meta is None:
        raise EpisodeFormatError(f"{path}: schema metadata {METADATA_KEY.decode()!r} is missing")
    try:
        meta_fields = json.loads(raw_meta)
    except ValueError:
        raise EpisodeFormatError(f"{path}: schema metadata {METADATA_KEY.decode()!r} is not valid JSON") from None
    if not isinstance(meta_fields, dict):
        raise EpisodeFormatError(f"{path}: schema metadata {METADATA_KEY.decode()!r} must be a JSON object")
    expected = {f.name for f in fields(EpisodeMeta)} | {"image_shape"}
    required = expected - {"format_version"}
    missing, extra = sorted(required - set(meta_fields)), sorted(set(meta_fields) - expected)
    if missing or extra:
        what = "; ".join(part for part in (f"missing {missing}" if missing else "",
                                           f"unknown {extra}" if extra else "") if part)
        raise EpisodeFormatError(f"{path}: episode metadata fields: {what}")
    image_shape = meta_fields.pop("image_shape")
    meta = EpisodeMeta(**meta_fields)
    if meta.format_version != FORMAT_VERSION:
        raise EpisodeFormatError(f"{path}: format_version {meta.format_version}, expected {FORMAT_VERSION}")
    for name, kind in (("episode_id", str), ("task", str), ("n_steps", int), ("episode_index", int), ("seed", int),
                       ("action_dim", int), ("gripper_dim", int), ("success", bool)):
        if not isinstance(getattr(meta, name), kind) or getattr(meta, name) in ("",):
            raise EpisodeFormatError(f"{path}: episode metadata field {name!r}: expected {kind.__name__}, "
                                     f"got {getattr(meta, name)!r}")
    if not (isinstance(image_shape, list) and len(image_shape) == 3 and all(isinstance(n, int) and n >= 0
                                                                            for n in image_shape)):
        raise EpisodeFormatError(f"{path}: episode metadata field 'image_shape': expected [H, W, 3], got {image_shape!r}")
    return meta, image_shape


def _check_values(episode: Episode, path: Path) -> None:
    """Values, not only types: NaN / inf would train a model whose every weight is NaN."""
    for column, values in (("observation.state", episode.states), ("observation.environment_state",
                           episode.environment_states), ("action", episode.actions), ("next.reward", episode.rewards)):
        bad = ~np.isfinite(values)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise EpisodeFormatError(f"{path}: column {column!r}: non-finite value at step {step} "
                                     f"({values.reshape(len(values), -1)[step].tolist()})")
    proposals = episode.policy_actions
    partial = np.isnan(proposals).any(axis=1) & ~np.isnan(proposals).all(axis=1)
    if np.isinf(proposals).any() or partial.any():
        step = int(np.flatnonzero(partial | np.isinf(proposals).any(axis=1))[0])
        raise EpisodeFormatError(f"{path}: column 'complementary_info.policy_action': step {step} must be all NaN "
                                 f"(no proposal) or finite, got {proposals[step].tolist()}")
    acted = episode.acted_by == ActedBy.POLICY  # (a human step may lack one: a recording made elsewhere)
    if (acted & np.isnan(proposals).any(axis=1)).any():
        step = int(np.flatnonzero(acted & np.isnan(proposals).any(axis=1))[0])
        raise EpisodeFormatError(f"{path}: column 'complementary_info.policy_action': step {step} was acted by "
                                 f"{ACTOR_NAMES[ActedBy(int(episode.acted_by[step]))]} but has no policy proposal")
