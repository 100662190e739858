"""A policy deployed as an :class:`apo_core.actors.Actor`: observation in, native action out.

A policy that predicts chunks of H actions executes them open-loop (ACT, π0-FAST): it
decides (looks at the image and decodes) once every H steps and replays the chunk in
between. The human still acts per step: when they take over, the rest of the chunk is
dropped (:meth:`VlaActor.drop_plan`), and the policy decides afresh when it acts again.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from apo_core.envs.base import Observation
from apo_core.policy.interface import Policy


class VlaActor:
    def __init__(self, policy: Policy, instruction: str, name: str = "vla"):
        self.policy = policy.eval()
        self.name = name
        self.instruction = instruction
        self.needs_image = policy.needs_image
        self._plan: deque[np.ndarray] = deque()

    def reset(self, seed: int) -> None:
        """A new episode: greedy decoding is deterministic; only the current chunk is state."""
        self.drop_plan()

    def drop_plan(self) -> None:
        """Forget the rest of the current chunk (the human acted instead)."""
        self._plan.clear()

    @torch.no_grad()
    def plan_batch(self, observations: list[Observation]) -> np.ndarray:
        """One batched greedy decode for several episodes: native action chunks [B, H, D].

        A token sequence that does not decode gives no motion (zeros) for its chunk."""
        images = np.stack([o.image for o in observations]) if self.needs_image else None
        inputs = self.policy.observations(images, np.stack([o.state for o in observations]),
                                          np.stack([o.environment_state for o in observations]),
                                          [self.instruction] * len(observations))
        chunks, decoded = self.policy.decode_actions(self.policy.generate(inputs))
        chunks[~decoded] = 0.0
        return chunks

    def act(self, observation: Observation) -> np.ndarray:
        """The next action of the current chunk, deciding a new chunk when it is spent."""
        if not self._plan:
            self._plan.extend(self.plan_batch([observation])[0])
        return self._plan.popleft()
