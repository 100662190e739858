"""Anything that maps an observation to an action: policies, the scripted expert, noise.

The collector and the evaluator only need :class:`Actor`; the VLA policy implements it
too, so a trained round, the expert and a random baseline are deployed the same way.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from apo_core.envs.base import Observation


class Actor(Protocol):
    """Acts at every step; ``reset`` is called at the start of each episode."""

    name: str

    def reset(self, seed: int) -> None: ...

    def act(self, observation: Observation) -> np.ndarray: ...


class RandomActor:
    """Uniform actions in [-1, 1]^D, seeded per episode: the worst policy, for tests and demos."""

    name = "random"

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, observation: Observation) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, size=self.action_dim).astype(np.float32)
