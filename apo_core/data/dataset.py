"""The training dataset: every round's labelled episodes in LeRobot v3.0 layout.

One cumulative dataset under ``<workspace>/datasets/`` (repo id ``apo/lifelong``), written
with lerobot's own writer, so ``LeRobotDataset(repo_id, root=...)`` reads it unchanged:

    meta/info.json  meta/stats.json  meta/tasks.parquet  meta/episodes/chunk-000/file-NNN.parquet
    data/chunk-000/file-NNN.parquet      one new shard per appended round

Per frame, besides LeRobot's own columns: ``observation.image`` (PNG), ``observation.state``
(proprio), ``observation.environment_state``, ``action``, ``c`` (the APO label, 0/1/2),
``acted_by``, ``complementary_info.is_intervention``, ``complementary_info.policy_action``,
``next.reward``, ``next.success``, ``round``, ``source``, ``episode_id`` (which recorded
episode the frame comes from: the lineage key) and ``world_variation`` (the world it was
played in).

Appending a round resumes the dataset: lerobot opens a new data shard and never rewrites
an earlier one, so versioning cost follows the new data only. All input episodes are read
and validated before anything is written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from apo_core.config import LabelConfig
from apo_core.data.steps import demonstrates_task, episode_steps, filter_statistics
from apo_core.errors import ApoError
from apo_core.labels import ActedBy, label_counts
from apo_core.recording.episodes import ACTOR_NAMES, Episode
from apo_core.recording.store import EpisodeStore, check_unique

REPO_ID = "apo/lifelong"
# The world an episode was played in: "" (as built), an evaluation suite's name, or a drawn
# variation (apo_core/envs/perturbations.py: world_variation). Datasets created before it
# have no such column: their frames are written without it.
WORLD_COLUMN = "world_variation"
def _is_vector(data_type: pa.DataType) -> bool:
    return pa.types.is_list(data_type) or pa.types.is_fixed_size_list(data_type)


EXTRA_COLUMNS = {
    "observation.image": None,
    "observation.state": _is_vector,
    "action": _is_vector,
    "c": pa.types.is_integer,
    "acted_by": pa.types.is_string,
    "complementary_info.is_intervention": pa.types.is_boolean,
    "round": pa.types.is_integer,
    "source": pa.types.is_string,
    "episode_id": pa.types.is_string,
    "episode_sha256": pa.types.is_string,
}


class DatasetFormatError(ApoError):
    """A dataset shard or metadata file is corrupt or does not match the schema."""


def features(episode: Episode) -> dict:
    """LeRobot feature spec for episodes shaped like ``episode``."""
    height, width, channels = episode.images.shape[1:]
    action_dim = episode.actions.shape[1]

    def vector(size: int, dtype: str = "float32") -> dict:
        return {"dtype": dtype, "shape": (size,), "names": None}

    return {
        "observation.image": {"dtype": "image", "shape": (height, width, channels), "names": ["height", "width", "channel"]},
        "observation.state": vector(episode.states.shape[1]),
        "observation.environment_state": vector(episode.environment_states.shape[1]),
        "action": vector(action_dim),
        "complementary_info.policy_action": vector(action_dim),
        "complementary_info.has_policy_action": vector(1, "bool"),
        "complementary_info.is_intervention": vector(1, "bool"),
        "next.reward": vector(1),
        "next.success": vector(1, "bool"),
        "c": vector(1, "int64"),
        "round": vector(1, "int64"),
        "acted_by": {"dtype": "string", "shape": (1,), "names": None},
        "source": {"dtype": "string", "shape": (1,), "names": None},
        "episode_id": {"dtype": "string", "shape": (1,), "names": None},
        "episode_sha256": {"dtype": "string", "shape": (1,), "names": None},
        WORLD_COLUMN: {"dtype": "string", "shape": (1,), "names": None},
    }


@dataclass(frozen=True)
class AppendSummary:
    round: int
    episodes_added: list[str]
    episodes_skipped: list[str]
    frames_added: int
    label_counts: dict[str, int]


def recorded_episodes(root: Path) -> dict[str, str]:
    """Episode id -> content sha256 of every episode already in the dataset (from its shards)."""
    recorded: dict[str, str] = {}
    for shard in sorted((root / "data").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(shard, columns=["episode_id", "episode_sha256"]).to_pydict()
        recorded.update(zip(table["episode_id"], table["episode_sha256"]))
    return recorded


def append_round(
    root: Path,
    round_number: int,
    episode_dirs: list[Path],
    label_config: LabelConfig,
    *,
    fps: int,
    on_episode: Callable[[int, int], None] | None = None,
) -> AppendSummary:
    """Label and append the episodes under ``episode_dirs`` not yet in the dataset at ``root``.

    Re-running after a crash is safe: episodes already written are recognised by id and
    skipped. Failed expert demonstrations are not included (they demonstrate nothing).
    With the optional label filters on, actions are normalised with the statistics of the
    successful expert demonstrations among ``episode_dirs`` (see ``filter_statistics``).
    ``on_episode(done, total)`` after each episode appended.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # slow import (~15 s)

    root = Path(root)
    exists = (root / "meta" / "info.json").exists()
    if exists:
        validate_dataset(root)
    already = recorded_episodes(root) if exists else {}
    found = [item for d in episode_dirs for item in EpisodeStore(d).items()]  # reads + validates every file first
    check_unique(found, already)  # a copied or colliding episode is refused, never appended twice or skipped
    episodes = [episode for _, episode in found]
    fresh = [e for e in episodes if e.meta.episode_id not in already and demonstrates_task(e)]
    skipped = [e.meta.episode_id for e in episodes if e.meta.episode_id in already]
    counts = dict.fromkeys(label_counts(np.array([])), 0)
    if not fresh:
        return AppendSummary(round_number, [], skipped, 0, counts)

    if exists:
        dataset = LeRobotDataset.resume(REPO_ID, root=root)
    else:
        dataset = LeRobotDataset.create(REPO_ID, fps=fps, features=features(fresh[0]), root=root, use_videos=False)
    statistics = filter_statistics(label_config, [e for e in episodes if demonstrates_task(e)])
    frames = 0
    for done, episode in enumerate(fresh, start=1):
        steps = episode_steps(episode, label_config, statistics)
        for name, count in label_counts(steps.labels).items():
            counts[name] += count
        digest = episode.content_sha256()
        for t in range(len(episode)):
            frame = _frame(episode, t, int(steps.labels[t]), round_number, digest)
            dataset.add_frame({key: value for key, value in frame.items() if key in dataset.features or key == "task"})
        dataset.save_episode()
        frames += len(episode)
        if on_episode is not None:
            on_episode(done, len(fresh))
    dataset.finalize()
    shutil.rmtree(root / "images", ignore_errors=True)  # lerobot's temporary PNGs, now embedded
    validate_dataset(root)
    return AppendSummary(round_number, [e.meta.episode_id for e in fresh], skipped, frames, counts)


def _frame(episode: Episode, t: int, label: int, round_number: int, digest: str) -> dict:
    proposal = episode.policy_actions[t]
    return {
        "observation.image": episode.images[t],
        "observation.state": episode.states[t],
        "observation.environment_state": episode.environment_states[t],
        "action": episode.actions[t],
        "complementary_info.policy_action": np.nan_to_num(proposal, nan=0.0),  # 0 where there was none
        "complementary_info.has_policy_action": np.array([not np.isnan(proposal).any()]),
        "complementary_info.is_intervention": np.array([episode.acted_by[t] == ActedBy.HUMAN]),
        "next.reward": np.array([episode.rewards[t]], dtype=np.float32),
        "next.success": np.array([episode.successes[t]]),
        "c": np.array([label], dtype=np.int64),
        "round": np.array([round_number], dtype=np.int64),
        "acted_by": ACTOR_NAMES[ActedBy(int(episode.acted_by[t]))],
        "source": episode.meta.source,
        "episode_id": episode.meta.episode_id,
        "episode_sha256": digest,
        WORLD_COLUMN: episode.meta.perturbation or "",
        "task": episode.meta.instruction,
    }


def validate_dataset(root: Path) -> dict:
    """Check every data shard against meta/info.json; DatasetFormatError names file and column."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{info_path}: unreadable dataset metadata: {exc}") from None
    shards = sorted((root / "data").glob("chunk-*/file-*.parquet"))
    if not shards:
        raise DatasetFormatError(f"{root / 'data'}: no data shards")
    frames = 0
    for shard in shards:
        try:
            schema = pq.read_schema(shard)
            rows = pq.ParquetFile(shard).metadata.num_rows
        except (OSError, pa.ArrowInvalid) as exc:
            raise DatasetFormatError(f"{shard}: not a readable Parquet shard: {exc}") from None
        for column, type_check in EXTRA_COLUMNS.items():
            if column not in schema.names:
                raise DatasetFormatError(f"{shard}: column {column!r} is missing")
            if type_check is not None and not type_check(schema.field(column).type):
                raise DatasetFormatError(
                    f"{shard}: column {column!r} has type {schema.field(column).type}, expected {type_check.__name__.lstrip("_").removeprefix("is_")}"
                )
        frames += rows
    if frames != info["total_frames"]:
        raise DatasetFormatError(f"{info_path}: total_frames={info['total_frames']} but the shards hold {frames} rows")
    return info
