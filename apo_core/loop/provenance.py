"""Which data made a model round, and how: the round's dataset lineage (its tag, md5 and
episodes) joined with what the model store records (parent, method, gate metrics) and the
training record stored with the weights (code commit, config and its hash, threads)."""

from __future__ import annotations

import json
from collections import Counter

from apo_core.config import ApoConfig
from apo_core.data.lineage import read_record
from apo_core.registry.object_store import NotFound
from apo_core.registry.store import registry_for
from apo_core.workdir import TRAINING_RECORD, parse_round_name


def stored_training_record(config: ApoConfig, round_number: int) -> dict:
    """The training record published with round N's weights (sha256-verified), or {}."""
    registry = registry_for(config)
    if TRAINING_RECORD not in registry.manifest(round_number).files:
        return {}
    return json.loads(registry.round_file(round_number, TRAINING_RECORD))


def round_provenance(config: ApoConfig, round_number: int) -> dict:
    """Round N's dataset and, once published, its model's parent, method and training."""
    record = read_record(config.dataset_workspace, round_number)
    episodes = record["episodes"]
    provenance = {
        "round": round_number, "dataset_tag": record["git_tag"], "dataset_md5": record["dataset_md5"],
        "dataset_commit": record["git_commit"],
        "episodes_per_source": dict(sorted(Counter(e["source"] for e in episodes).items())),
        "episodes_per_robot": dict(sorted(Counter(e["episode_id"].split(".")[0] for e in episodes).items())),
        "new_episodes": len(record["new_episode_ids"]), "steps_per_label": record["label_counts"],
        "published": False, "parent_round": None, "method": None, "code_commit": None, "config_hash": None,
    }
    try:
        manifest = registry_for(config).manifest(round_number)
    except NotFound:
        return {**provenance, "lineage": record}
    training = stored_training_record(config, round_number)
    return {**provenance, "published": True, "parent_round": manifest.parent_round, "method": manifest.method,
            "code_commit": training.get("code_commit"), "config_hash": training.get("config_hash"),
            "trained_on": training.get("dataset_tag"), "update_read": update_read(training.get("episodes_read")),
            "lineage": record}


def update_read(episodes: dict[str, list[str]] | None) -> dict | None:
    """What the round's update read of its dataset (apo_core/data/replay.py), episodes per
    round: the demonstrations, the round's own, and the replay of earlier rounds (None: the
    whole dataset)."""
    if episodes is None:
        return None
    by_round = {group: dict(sorted(Counter(_round_of(e) for e in ids).items())) for group, ids in episodes.items()}
    return {"episodes": sum(len(ids) for ids in episodes.values()), **by_round, "episode_ids": episodes}


def _round_of(episode_id: str) -> int:
    return parse_round_name(episode_id.split(".")[1]) or 0
