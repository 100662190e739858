"""Which episodes of a dataset version an update reads: the round's own, the demonstrations,
and a fixed-size replay of earlier rounds (docs/apo.md §6), so that an update's steps and
memory do not grow with the number of rounds.

The replay is chosen from the version's lineage record (each episode's round, source and
label counts), before any frame is read: task-balanced (the tasks take turns), episodes in
which the human took over or the robot headed for failure first (the steps APO learns
from), then the others; each group in a seeded random order. The same record, size and
seed always give the same episodes, so a round reproduces.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

CORRECTION_LABELS = ("human", "failure_prone")  # lineage label names of the steps a takeover makes


def episode_task(episode_id: str) -> str:
    """The task of an episode id ``<robot>.<collection>.<task>.e<index>`` (ingested
    recordings name theirs alike); "" when the id has another shape."""
    parts = episode_id.split(".")
    return parts[2] if len(parts) == 4 else ""


def has_correction(episode: dict) -> bool:
    """The human took over in it (its steps and the K before are what an update learns from)."""
    return any(episode["labels"].get(name, 0) for name in CORRECTION_LABELS)


def replay_order(earlier: list[dict], seed: int | tuple[int, ...]) -> list[str]:
    """Every earlier episode's id in the order the replay takes them: the tasks in turn,
    within a task the corrected episodes first, each group shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    queues = {}
    by_task = defaultdict(list)
    for episode in sorted(earlier, key=lambda e: e["episode_id"]):
        by_task[episode_task(episode["episode_id"])].append(episode)
    for task, episodes in sorted(by_task.items()):
        corrected = [e["episode_id"] for e in episodes if has_correction(e)]
        others = [e["episode_id"] for e in episodes if not has_correction(e)]
        queues[task] = list(rng.permutation(corrected)) + list(rng.permutation(others))
    order = []
    while any(queues.values()):
        for task in sorted(queues):
            if queues[task]:
                order.append(str(queues[task].pop(0)))
    return order


def update_episodes(episodes: list[dict], round_number: int, replay: int | None, seed: int) -> dict[str, list[str]]:
    """The episode ids an update of round N reads from its dataset's lineage ``episodes``:
    ``demonstrations`` (all), ``current`` (round N's), ``replayed`` (at most ``replay`` of
    rounds 1..N-1; None: all of them)."""
    demonstrations = sorted(e["episode_id"] for e in episodes if e["source"] == "expert")
    current = sorted(e["episode_id"] for e in episodes if e["source"] != "expert" and e["round"] == round_number)
    earlier = [e for e in episodes if e["source"] != "expert" and e["round"] < round_number]
    order = replay_order(earlier, (seed, round_number))
    replayed = sorted(order if replay is None else order[:replay])
    return {"demonstrations": demonstrations, "current": current, "replayed": replayed}
