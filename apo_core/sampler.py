"""Balanced preference batches (docs/apo.md §3).

Every batch mixes three pools in fixed proportions, by default (paper):
    50% "correct"  (expert demonstration steps; the public code adds autonomous steps),
    25% "human"    (human-correction steps, c = 2),
    25% "failure"  (failure-prone steps, c = 0).
An epoch is one pass over the human-correction pool (each of its steps once, shuffled);
the other pools cycle, reshuffled each time they run out. When ratio · batch size is not
an integer, each batch gives the extra slots to the pools furthest behind their share,
so the long-run proportions are exact. A pool with no steps gives its share to the
others, in proportion; the human pool must not be empty (it defines the epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from apo_core.labels import ActedBy, Label

POOLS = ("correct", "human", "failure")
PAPER_RATIOS = {"correct": 0.5, "human": 0.25, "failure": 0.25}


def preference_pools(labels: np.ndarray, acted_by: np.ndarray, *, autonomous_is_correct: bool = False) -> dict[str, np.ndarray]:
    """Step indices of each pool from per-step labels and actors (dropped steps excluded)."""
    labels, acted_by = np.asarray(labels), np.asarray(acted_by)
    correct = acted_by == ActedBy.EXPERT_DEMO
    if autonomous_is_correct:
        correct |= (acted_by == ActedBy.POLICY) & (labels == Label.AUTONOMOUS)
    return {
        "correct": np.flatnonzero(correct & (labels != Label.DROPPED)),
        "human": np.flatnonzero(labels == Label.HUMAN),
        "failure": np.flatnonzero(labels == Label.FAILURE_PRONE),
    }


class _Cycler:
    """Draws from a pool without replacement, reshuffling when it runs out."""

    def __init__(self, indices: np.ndarray, rng: np.random.Generator):
        self.indices = indices
        self.rng = rng
        self.order = rng.permutation(indices)
        self.position = 0

    def take(self, count: int) -> np.ndarray:
        taken = []
        while count > 0:
            if self.position == len(self.order):
                self.order = self.rng.permutation(self.indices)
                self.position = 0
            chunk = self.order[self.position : self.position + count]
            self.position += len(chunk)
            count -= len(chunk)
            taken.append(chunk)
        return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)


@dataclass
class BalancedBatchSampler:
    """Yields index batches over one epoch (a pass over the human pool); reusable per epoch."""

    pools: dict[str, np.ndarray]
    batch_size: int = 8
    ratios: dict[str, float] | None = None
    seed: int = 0

    def __post_init__(self):
        ratios = dict(PAPER_RATIOS if self.ratios is None else self.ratios)
        if set(ratios) != set(POOLS) or any(r < 0 for r in ratios.values()) or sum(ratios.values()) <= 0:
            raise ValueError(f"ratios must give non-negative shares for {POOLS}, got {ratios}")
        if len(self.pools.get("human", [])) == 0:
            raise ValueError("no human-correction steps: the balanced sampler has no epoch to run")
        live = {name: ratios[name] for name in POOLS if len(self.pools.get(name, [])) > 0 and ratios[name] > 0}
        total = sum(live.values())
        self.shares = {name: share / total for name, share in live.items()}
        self._rng = np.random.default_rng(self.seed)
        self._cyclers = {name: _Cycler(np.asarray(self.pools[name]), self._rng) for name in self.shares}
        self._given = dict.fromkeys(self.shares, 0)
        self._batches = 0

    def _counts(self) -> dict[str, int]:
        """Slots per pool for the next batch: floor of the share, extras to the furthest behind."""
        target = {n: s * self.batch_size * (self._batches + 1) for n, s in self.shares.items()}
        counts = {n: int(np.floor(s * self.batch_size)) for n, s in self.shares.items()}
        for _ in range(self.batch_size - sum(counts.values())):
            behind = max(counts, key=lambda n: target[n] - self._given[n] - counts[n])
            counts[behind] += 1
        return counts

    def __len__(self) -> int:
        per_batch = self.shares["human"] * self.batch_size
        return int(np.ceil(len(self.pools["human"]) / per_batch))

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Each batch: {pool name: step indices}; the human pool is walked once, in order."""
        human_order = self._rng.permutation(np.asarray(self.pools["human"]))
        position = 0
        while position < len(human_order):
            counts = self._counts()
            batch = {}
            for name, count in counts.items():
                if name == "human":
                    batch[name] = human_order[position : position + count]
                    position += count
                else:
                    batch[name] = self._cyclers[name].take(count)
                self._given[name] += count
            self._batches += 1
            yield batch


def sirius_ratios(intervention_share: float = 0.5, pre_intervention_share: float = 0.002) -> dict[str, float]:
    """Sirius's loss mass per class, as pool shares of every batch (docs/apo.md §9).

    Human interventions carry ``intervention_share`` of the mass, the steps just before a
    takeover (failure-prone) ``pre_intervention_share``, and the rest goes to the
    "correct" pool (demos and autonomous steps, drawn uniformly: their natural shares).
    """
    rest = 1.0 - intervention_share - pre_intervention_share
    if rest <= 0:
        raise ValueError(f"sirius shares leave nothing for demos and robot steps: {intervention_share} + {pre_intervention_share} >= 1")
    return {"correct": rest, "human": intervention_share, "failure": pre_intervention_share}


def balanced_epochs(sampler: BalancedBatchSampler, epochs: float) -> list[dict[str, np.ndarray]]:
    """``epochs`` passes of the balanced sampler (each a pass over the human pool).

    A fractional epoch ends part-way through the last pass: round(epochs · len(sampler))
    batches in all, at least one.
    """
    total = max(1, round(epochs * len(sampler)))
    batches: list[dict[str, np.ndarray]] = []
    while len(batches) < total:
        batches.extend(iter(sampler))
    return batches[:total]


def uniform_epochs(indices: np.ndarray, batch_size: int, epochs: float, seed: int) -> list[np.ndarray]:
    """Shuffled passes over ``indices`` cut into batches: every index once per epoch.

    round(epochs · ceil(n / batch_size)) batches in all, at least one; the last batch of a
    pass may be short.
    """
    indices = np.asarray(indices)
    if len(indices) == 0:
        raise ValueError("nothing to train on: the pool is empty")
    per_epoch = int(np.ceil(len(indices) / batch_size))
    total = max(1, round(epochs * per_epoch))
    rng = np.random.default_rng(seed)
    batches: list[np.ndarray] = []
    while len(batches) < total:
        order = rng.permutation(indices)
        batches.extend(order[start : start + batch_size] for start in range(0, len(order), batch_size))
    return batches[:total]
