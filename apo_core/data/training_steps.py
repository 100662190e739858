"""The versioned dataset read back as training steps: what a round trains on is exactly what
its dataset tag holds (docs/apo.md §2: the labels were computed once, when it was built).

The LeRobot v3 dataset's data shards (``data/chunk-*/file-*.parquet``, the files
``LeRobotDataset`` reads) are read with pyarrow, column by column: importing lerobot costs a
fresh process ~10 s, and its per-frame access decodes every image, which a policy that does
not look at the camera never needs. Images are decoded only when asked for, once per
dataset version and selection of episodes: the decoded frames are cached under
``<dataset>/../.frames/<md5>[-<selection>].npy``. A selection of episodes (an update's
replay, apo_core/data/replay.py) is read shard by shard, its rows alone kept: memory grows
with the selection, not with the dataset.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from apo_core.data.dataset import validate_dataset
from apo_core.data.steps import Steps
from apo_core.labels import ActedBy, Label
from apo_core.recording.episodes import ACTOR_NAMES

COLUMNS = ["observation.state", "observation.environment_state", "action", "complementary_info.policy_action",
           "next.success", "c", "acted_by", "episode_id", "task_index"]
HAS_PROPOSAL = "complementary_info.has_policy_action"  # datasets created before it: demos alone had none
_ACTORS = {name: actor for actor, name in ACTOR_NAMES.items()}


def _vectors(table: pa.Table, name: str) -> np.ndarray:
    """A feature as [rows, width] (lerobot stores a feature of shape (1,) as a plain column)."""
    column = table.column(name).combine_chunks()
    if not pa.types.is_fixed_size_list(column.type) and not pa.types.is_list(column.type):
        return column.to_numpy(zero_copy_only=False).reshape(len(column), 1)
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)


def _instructions(root: Path, task_index: np.ndarray) -> np.ndarray:
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pydict()
    names = next(key for key in tasks if key != "task_index") if "task" not in tasks else "task"
    by_index = dict(zip(tasks["task_index"], tasks[names]))
    return np.array([by_index[int(i)] for i in task_index], dtype=object)


def _read(shards: list[Path], columns: list[str], episodes: list[str] | None) -> pa.Table:
    """The columns of every shard, only the rows of ``episodes`` when given."""
    rows = None if episodes is None else [("episode_id", "in", episodes)]
    return pa.concat_tables([pq.read_table(s, columns=columns, filters=rows) for s in shards])


def _decoded_images(root: Path, shards: list[Path], md5: str | None, episodes: list[str] | None) -> np.ndarray:
    selection = "" if episodes is None else "-" + hashlib.sha256("\n".join(episodes).encode()).hexdigest()[:16]
    cache = root.parent / ".frames" / f"{md5}{selection}.npy" if md5 else None
    if cache is not None and cache.exists():
        return np.load(cache)
    from PIL import Image

    column = _read(shards, ["observation.image"], episodes).column(0).combine_chunks()
    images = np.stack([np.asarray(Image.open(io.BytesIO(data))) for data in column.field("bytes").to_pylist()])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npy")
        np.save(partial, images)
        partial.replace(cache)
    return images


def steps_from_dataset(root: str | Path, *, images: bool, md5: str | None = None,
                       episodes: list[str] | None = None) -> Steps:
    """Every frame of the dataset at ``root`` (or of ``episodes`` alone, sorted ids) as
    labelled steps, steps the label filters dropped removed. ``images=False`` leaves the
    image column empty ([N, 0, 0, 3]); ``md5`` (the version's) keys the cache of decoded frames."""
    root = Path(root)
    info = validate_dataset(root)
    shards = sorted((root / "data").glob("chunk-*/file-*.parquet"))
    columns = COLUMNS + ([HAS_PROPOSAL] if HAS_PROPOSAL in info["features"] else [])
    table = _read(shards, columns, episodes)
    acted_by = np.array([_ACTORS[name] for name in table.column("acted_by").to_pylist()], dtype=np.int8)
    episode_ids = np.array(table.column("episode_id").to_pylist(), dtype=object)
    frame_success = _vectors(table, "next.success")[:, 0].astype(bool)
    outcome = dict(zip(episode_ids, frame_success))  # an episode's outcome: its last frame's
    proposals = _vectors(table, "complementary_info.policy_action").astype(np.float32)
    if HAS_PROPOSAL in columns:
        proposals[~_vectors(table, HAS_PROPOSAL)[:, 0].astype(bool)] = np.nan  # stored as 0 where there was none
    else:
        proposals[acted_by == ActedBy.EXPERT_DEMO] = np.nan
    count = len(table)
    shape = info["features"]["observation.image"]["shape"]
    steps = Steps(
        images=_decoded_images(root, shards, md5, episodes) if images else np.zeros((count, 0, 0, shape[2]), dtype=np.uint8),
        proprio=_vectors(table, "observation.state").astype(np.float32),
        environment_state=_vectors(table, "observation.environment_state").astype(np.float32),
        actions=_vectors(table, "action").astype(np.float32),
        policy_actions=proposals,
        acted_by=acted_by,
        labels=_vectors(table, "c")[:, 0].astype(np.int8),
        instructions=_instructions(root, table.column("task_index").to_numpy()),
        episode_ids=episode_ids,
        success=np.array([outcome[e] for e in episode_ids]),
    )
    return steps.select(steps.labels != Label.DROPPED)
