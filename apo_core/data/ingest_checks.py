"""The door of `apo ingest`: a recording's rows checked as strictly as the collector's own.

A recording made elsewhere is read whole and checked before anything is written: every
parquet file readable, every feature its ``meta/info.json`` declares present with the type
and shape declared (a boolean is a boolean, never the text "False"), one run of frames per
``episode_index`` with ``frame_index`` 0, 1, 2, ... in order, the counts of
``meta/episodes`` and ``info.json`` agreeing with the rows, values finite, actions within
the world's bounds, images of the size declared, and no episode already in the dataset.
Each refusal is one :class:`IngestError` naming the file, column or episode and what was
expected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from apo_core.errors import ApoError
from apo_core.recording.episodes import Episode
from apo_core.recording.store import check_unique

# The world's action space per simulator: MetaWorld's is [-1, 1] per dim, and
# MetaWorldEnv.step clips every action to it, so a recorded action outside it was never
# executed as recorded.
ACTION_BOUNDS = {"metaworld": 1.0}
LEROBOT_COLUMNS = ("episode_index", "frame_index", "task_index")


class IngestError(ApoError):
    """The recording cannot become the round's data; nothing was written."""


@dataclass(frozen=True)
class RecordingData:
    """Every row of a recording's data files, and which file each row came from."""

    table: pa.Table
    files: list[Path]
    offsets: np.ndarray  # the first row of each file in ``table``

    def at(self, row: int) -> str:
        """``<file> row <r>``: where a row of ``table`` is stored."""
        file = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return f"{self.files[file]} row {row - int(self.offsets[file])}"


def read_parquet(path: Path, what: str) -> pa.Table:
    """A parquet file of the recording, or one line saying it cannot be read."""
    if not path.is_file():
        raise IngestError(f"{path}: missing; the recording is incomplete: copy it again")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        cause = str(error).splitlines()[0].replace(f" '{path}'", "").split(". ")[0][:160]
        raise IngestError(f"{path}: not a readable parquet file ({cause}); the {what} is truncated or corrupt: copy "
                          f"the recording again") from None


def read_data(source: Path, features: dict) -> RecordingData:
    """Every data file of the recording, each checked against the declared ``features``."""
    files = sorted((source / "data").glob("chunk-*/file-*.parquet"))
    if not files:
        raise IngestError(f"{source / 'data'}: no data files (chunk-*/file-*.parquet): the recording holds no frames")
    tables = []
    for path in files:
        table = read_parquet(path, "data file")
        check_columns(table, features, path)
        tables.append(table)
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid:
        raise IngestError(f"{source / 'data'}: the data files have different columns or types ({files[0].name} and "
                          f"another): one recording has one schema") from None
    return RecordingData(table, files, np.cumsum([0] + [t.num_rows for t in tables])[:-1])


def _kind(data_type: pa.DataType) -> str:
    """What a column holds, in the words of ``info.json``'s dtypes."""
    while _is_list(data_type):
        data_type = data_type.value_type
    for kind, test in (("bool", pa.types.is_boolean), ("integer", pa.types.is_integer),
                       ("float", pa.types.is_floating), ("string", pa.types.is_string),
                       ("string", pa.types.is_large_string)):
        if test(data_type):
            return kind
    if pa.types.is_struct(data_type) and data_type.get_field_index("bytes") >= 0:
        return "image"
    return str(data_type)


def _kinds_for(dtype: str) -> set[str] | None:
    """The column kinds a declared dtype may be stored as (None: a dtype this door does not read)."""
    if dtype in ("bool", "image", "string"):
        return {dtype}
    if dtype.startswith(("int", "uint")):
        return {"integer"}
    return {"float", "integer"} if dtype.startswith("float") else None


def check_columns(table: pa.Table, features: dict, path: Path) -> None:
    """Every declared feature is a column of ``table``, of its declared type and shape, with
    no empty value (a video lives outside the data files)."""
    missing = [name for name in LEROBOT_COLUMNS if name not in table.column_names]
    if missing:
        raise IngestError(f"{path}: no column {missing[0]!r}; every LeRobot v3 data file has "
                          f"{', '.join(LEROBOT_COLUMNS)}")
    for name, feature in {**{name: {"dtype": "int64", "shape": [1]} for name in LEROBOT_COLUMNS}, **features}.items():
        if feature["dtype"] == "video":
            continue
        if name not in table.column_names:
            raise IngestError(f"{path}: feature {name!r} is declared in meta/info.json but is not a column of this "
                              f"file")
        column, expected = table.column(name).combine_chunks(), _kinds_for(feature["dtype"])
        if expected is not None and _kind(column.type) not in expected:
            raise IngestError(f"{path}: column {name!r} holds {_kind(column.type)} values ({_sample(column)}), but "
                              f"meta/info.json declares {feature['dtype']}: store it as {feature['dtype']}")
        if _has_empty(column):
            raise IngestError(f"{path}: column {name!r} has an empty value; every frame has every feature")
        _check_shape(column, feature, name, path)


def _is_list(data_type: pa.DataType) -> bool:
    return pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type)


def _has_empty(column: pa.Array) -> bool:
    """Whether a row, or a value inside a row, is null."""
    if column.null_count:
        return True
    if _is_list(column.type):
        return _has_empty(column.flatten())
    return _kind(column.type) == "image" and column.field("bytes").null_count > 0


def _sample(column: pa.Array) -> str:
    while _is_list(column.type):
        column = column.flatten()
    if pa.types.is_struct(column.type):
        return "structs"
    return ", ".join(repr(v) for v in pc.unique(column).to_pylist()[:3])


def _check_shape(column: pa.Array, feature: dict, name: str, path: Path) -> None:
    """A vector's rows hold as many values as its declared shape (images: checked decoded)."""
    if _kind(column.type) in ("image", "string"):
        return
    shape, size = list(feature["shape"]), int(np.prod(feature["shape"]))
    if not _is_list(column.type):
        if size != 1:
            raise IngestError(f"{path}: column {name!r} holds one value per frame, but meta/info.json declares "
                              f"shape {shape}")
        return
    lengths = np.asarray(pc.list_value_length(column))
    wrong = np.flatnonzero(lengths != shape[0])
    if wrong.size:
        raise IngestError(f"{path}: column {name!r}: row {int(wrong[0])} holds {int(lengths[wrong[0]])} values, but "
                          f"meta/info.json declares shape {shape}")
    leaves = column
    while _is_list(leaves.type):
        leaves = leaves.flatten()
    if len(leaves) != size * len(column):
        raise IngestError(f"{path}: column {name!r} holds {len(leaves)} values in {len(column)} rows, but "
                          f"meta/info.json declares shape {shape}")


def episode_rows(data: RecordingData) -> dict[int, np.ndarray]:
    """The rows of each episode: one run of rows per ``episode_index``, its ``frame_index``
    0, 1, 2, ... in order (two episodes under one index, or frames reordered, refused)."""
    episode_index = data.table.column("episode_index").to_numpy()
    frame_index = data.table.column("frame_index").to_numpy()
    episodes = {}
    for number in np.unique(episode_index):
        rows = np.flatnonzero(episode_index == number)
        gaps = np.flatnonzero(np.diff(rows) > 1)
        if gaps.size:
            raise IngestError(f"{data.at(int(rows[gaps[0] + 1]))}: episode_index {number} again, after other "
                              f"episodes' frames: two episodes under one episode_index, or the rows are out of order")
        frames = frame_index[rows]
        wrong = np.flatnonzero(frames != np.arange(len(rows)))
        if wrong.size and wrong[0] > 0 and frames[wrong[0]] == 0:
            raise IngestError(f"{data.at(int(rows[wrong[0]]))}: frame_index starts again at 0 within episode_index "
                              f"{number}: two episodes under one episode_index")
        if wrong.size:
            raise IngestError(f"{data.at(int(rows[wrong[0]]))}: frame_index {frames[wrong[0]]}, expected "
                              f"{wrong[0]}: the frames of episode_index {number} must be stored in order from 0, none "
                              f"missing or repeated")
        episodes[int(number)] = rows
    return episodes


def check_counts(source: Path, info: dict, episodes: dict[int, np.ndarray]) -> None:
    """``info.json``'s total_episodes and ``meta/episodes``' lengths (where the recording has
    them) agree with the episodes the rows hold."""
    if info.get("total_episodes", len(episodes)) != len(episodes):
        raise IngestError(f"{source / 'meta' / 'info.json'}: total_episodes {info.get('total_episodes')}, but the "
                          f"data holds {len(episodes)} episode indices {sorted(episodes)[:10]}")
    files = sorted((source / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        return
    tables = [read_parquet(path, "episodes metadata") for path in files]
    lengths = {}
    for path, table in zip(files, tables):
        if not {"episode_index", "length"} <= set(table.column_names):
            raise IngestError(f"{path}: no 'episode_index' and 'length' columns: not LeRobot v3 episodes metadata")
        lengths.update(zip(table.column("episode_index").to_pylist(), table.column("length").to_pylist()))
    for number in sorted(set(lengths) | set(episodes), key=str):
        held = len(episodes.get(number, ()))
        if lengths.get(number) != held:
            raise IngestError(f"{files[0].parent}: episode {number}: length {lengths.get(number, 'absent')} in "
                              f"meta/episodes, but the data holds {held} frames under episode_index {number}")


def _values(table: pa.Table, name: str, rows: np.ndarray) -> np.ndarray:
    """A feature's values at ``rows``, one row per frame."""
    column = table.column(name).combine_chunks()
    if _is_list(column.type):
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)[rows]
    return column.to_numpy(zero_copy_only=False).reshape(len(column), 1)[rows]


def numbers(table: pa.Table, name: str, rows: np.ndarray, where: str) -> np.ndarray:
    """A numeric feature's values at ``rows``, one row per frame; finite."""
    values = _values(table, name, rows)
    if values.dtype.kind not in "iuf":
        raise IngestError(f"{where}: feature {name!r} holds {_kind(table.schema.field(name).type)} values, not "
                          f"numbers")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise IngestError(f"{where}: feature {name!r}: non-finite value at frame {row}")
    return values


def flags(table: pa.Table, name: str, rows: np.ndarray, where: str) -> np.ndarray:
    """A yes/no feature at ``rows``: booleans, or numbers that are 0 or 1 (HIL-SERL's buffer
    stores its flags as float32)."""
    values = _values(table, name, rows)[:, 0]
    if values.dtype.kind == "b":
        return values
    wrong = np.flatnonzero(~np.isin(values, (0, 1))) if values.dtype.kind in "iuf" else np.arange(len(values))
    if wrong.size:
        found = np.asarray(values[wrong[0]]).tolist()
        raise IngestError(f"{where}: feature {name!r}: {found!r} at frame {int(wrong[0])}; a flag is a boolean (or 0 "
                          f"/ 1)")
    return values.astype(bool)


def check_actions(actions: np.ndarray, name: str, bound: float, where: str) -> None:
    """Every action within the world's bounds, [-bound, bound] per dim."""
    outside = np.argwhere(np.abs(actions) > bound)
    if outside.size:
        frame, dim = (int(i) for i in outside[0])
        raise IngestError(f"{where}: feature {name!r}: {float(actions[frame, dim]):.4g} at frame {frame} (dim {dim}) "
                          f"is outside the world's action bounds [{-bound:g}, {bound:g}]")


def check_statistics(values: np.ndarray, name: str, where: str) -> None:
    """Values whose float32 mean and std are finite: the dataset's statistics are computed from them."""
    with np.errstate(over="ignore", invalid="ignore"):
        as_stored = values.astype(np.float32)
        finite = np.isfinite(as_stored.mean(axis=0)).all() and np.isfinite(as_stored.std(axis=0)).all()
    if not finite:
        raise IngestError(f"{where}: feature {name!r}: values up to {float(np.abs(values).max()):.4g} overflow the "
                          f"dataset's statistics (float32 mean and std)")


def images(table: pa.Table, name: str, rows: np.ndarray, shape: tuple, where: str) -> np.ndarray:
    """The frames of an image feature at ``rows``, decoded, each of the declared ``shape``."""
    from PIL import Image

    column = table.column(name).combine_chunks().field("bytes").to_pylist()
    frames = []
    for frame, row in enumerate(rows):
        try:
            image = np.asarray(Image.open(io.BytesIO(column[row])).convert("RGB"))
        except (OSError, ValueError, SyntaxError):
            raise IngestError(f"{where}: feature {name!r}: frame {frame} is not a readable image") from None
        if image.shape != tuple(shape):
            raise IngestError(f"{where}: feature {name!r}: frame {frame} is {image.shape[1]}x{image.shape[0]} "
                              f"pixels, but meta/info.json declares {list(shape)}")
        frames.append(image)
    return np.stack(frames)


def check_new(source: Path, data: RecordingData, rows: dict[int, np.ndarray], episodes: dict[int, Episode],
              dataset_root: Path) -> None:
    """No episode already in the dataset, by the content sha256 it records per frame
    (apo_core/data/dataset.py): the digest a copy of a versioned dataset carries, and the
    digest of each episode as it would be taken in (the dataset build's own check)."""
    from apo_core.data.dataset import recorded_episodes

    known = recorded_episodes(dataset_root)
    owner = {digest: episode_id for episode_id, digest in known.items()}
    if "episode_sha256" in data.table.column_names:
        carried = data.table.column("episode_sha256").to_pylist()
        for number, held in rows.items():
            copied = sorted({carried[r] for r in held if carried[r] in owner})
            if copied:
                raise IngestError(f"{source} episode {number}: its frames carry the episode_sha256 of "
                                  f"{owner[copied[0]]!r}, already in the dataset: data is taken in once")
    check_unique([(Path(f"{source} episode {number}"), episode) for number, episode in episodes.items()], known)
