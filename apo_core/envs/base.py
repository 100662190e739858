"""The gymnasium-style interface every world implements, generic over the action dim D."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from apo_core.config import PerturbationConfig


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one step.

    image: [H, W, 3] uint8 RGB, rows top to bottom.
    state: proprioception (MetaWorld: hand xyz + gripper opening), float32.
    environment_state: low-dim object/goal state (MetaWorld: object poses + goal), float32;
        privileged, used by a policy only where its config enables it.
    native: the world's own observation vector (what the scripted expert reads).
    """

    image: np.ndarray
    state: np.ndarray
    environment_state: np.ndarray
    native: np.ndarray


@dataclass(frozen=True)
class StepOutcome:
    observation: Observation
    reward: float
    success: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)


class RobotEnv(Protocol):
    """A seeded, rendered manipulation task.

    ``action_dim`` is D; ``gripper_dim`` names which action dim drives the gripper. Built
    without rendering, its observations carry an empty image and ``render_image`` gives the
    current view on demand (a chunked policy looks only when it decides).
    """

    task: str
    instruction: str
    action_dim: int
    gripper_dim: int
    max_steps: int
    perturbation: PerturbationConfig | None  # the world's variation now (None: as built)

    def perturb(self, perturbation: PerturbationConfig | None) -> None:
        """Play the next episodes in ``perturbation``'s world (None: the world as built)."""

    def reset(self, seed: int) -> Observation: ...

    def step(self, action: np.ndarray) -> StepOutcome: ...

    def render_image(self) -> np.ndarray: ...

    def object_height(self) -> float: ...

    def close(self) -> None: ...
