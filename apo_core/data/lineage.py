"""Lineage records: which episodes, labelled how, make up the dataset of round N.

Label counts are named failure_prone / autonomous / human (APO c = 0 / 1 / 2), and
expert_demo for demonstration steps (desirable, c = 1, counted apart).

One JSON file per round, ``lineage/round-NNNN.json`` in the workspace repo (committed
after the dataset commit it describes), read back by ``apo lineage``. The episode list
comes from the dataset itself (its ``episode_id``/``round``/``c`` columns), so the record
cannot disagree with the data it names.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from apo_core.config import ApoConfig
from apo_core.data.dataset import WORLD_COLUMN
from apo_core.data.versioning import DatasetVersion
from apo_core.errors import ApoError
from apo_core.labels import Label
from apo_core.stored import parse_stored
from apo_core.workdir import parse_round_name, round_name

LINEAGE_DIR = "lineage"
_LABEL_NAMES = {label.value: label.name.lower() for label in Label}


def label_name(label: int, source: str) -> str:
    """A step's name in a lineage record's label counts: expert_demo, or its label's name."""
    return "expert_demo" if source == "expert" else _LABEL_NAMES[label]


def config_hash(config: ApoConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def lineage_path(workspace_root: Path, round_number: int) -> Path:
    return Path(workspace_root) / LINEAGE_DIR / f"{round_name(round_number)}.json"


def build_record(dataset_root: Path, version: DatasetVersion, config: ApoConfig) -> dict:
    """The lineage of ``version``: its episodes (with label counts) grouped by source."""
    columns = ["episode_id", "round", "c", "source"]
    per_episode: dict[str, Counter] = defaultdict(Counter)
    episode_info: dict[str, dict] = {}
    for shard in sorted(Path(dataset_root).glob("data/chunk-*/file-*.parquet")):
        world = [WORLD_COLUMN] if WORLD_COLUMN in pq.read_schema(shard).names else []
        table = pq.read_table(shard, columns=columns + world).to_pydict()
        worlds = table[WORLD_COLUMN] if world else [""] * len(table["episode_id"])
        for episode_id, round_number, label, source, played_in in zip(*(table[c] for c in columns), worlds):
            per_episode[episode_id][label_name(int(label), source)] += 1
            episode_info.setdefault(episode_id, {"round": int(round_number), "source": source,
                                                 "world": played_in or None})
    episodes = [
        {"episode_id": episode_id, **episode_info[episode_id], "labels": dict(per_episode[episode_id])}
        for episode_id in sorted(per_episode)
    ]
    totals = Counter()
    for entry in episodes:
        totals.update(entry["labels"])
    return {
        "round": version.round,
        "dataset_md5": version.md5,
        "git_commit": version.commit,
        "git_tag": version.tag,
        "collected_by_policy_round": version.round - 1 if version.round > 0 else None,
        "config_hash": config_hash(config),
        "expert_demo_ids": [e["episode_id"] for e in episodes if e["source"] == "expert"],
        "new_episode_ids": [e["episode_id"] for e in episodes if e["round"] == version.round and e["source"] != "expert"],
        "label_counts": dict(totals),
        "episodes": episodes,
    }


def write_record(workspace_root: Path, record: dict) -> Path:
    path = lineage_path(workspace_root, record["round"])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    temporary.replace(path)
    return path


class EpisodeLineage(BaseModel):
    episode_id: str
    round: int
    source: str
    labels: dict[str, int]
    world: str | None = None  # the variation it was played in (None: the world as built, or an older record)


class LineageRecord(BaseModel):
    """A dataset version's lineage, as written in ``lineage/round-NNNN.json``."""

    model_config = ConfigDict(extra="allow")
    round: int
    dataset_md5: str
    git_commit: str
    git_tag: str
    collected_by_policy_round: int | None
    config_hash: str
    expert_demo_ids: list[str]
    new_episode_ids: list[str]
    label_counts: dict[str, int]
    episodes: list[EpisodeLineage]


def read_record(workspace_root: Path, round_number: int) -> dict:
    """Round N's lineage, read through its schema (a bad key is named, with the file)."""
    path = lineage_path(workspace_root, round_number)
    if not path.exists():
        raise ApoError(f"{path}: no lineage record for round {round_number}")
    record = parse_stored(LineageRecord, path.read_text(), str(path))
    if record.round != round_number:
        raise ApoError(f"{path}: round: the record says round {record.round}")
    return record.model_dump()


def rounds_with_lineage(workspace_root: Path) -> list[int]:
    records = (parse_round_name(p.stem) for p in (Path(workspace_root) / LINEAGE_DIR).glob("*.json"))
    return sorted(number for number in records if number is not None)
